"""The dataset card (`README.md` of the dataset folder and of every release).

In: the build folder and its provenance (`provenance.json` as a dict), and for a release
the version, Hub repo, license and changelog. Out: the card's text: a YAML header the Hub
and `huggingface_hub.DatasetCard` accept (license, language, task categories, tags, size
category, every config with its data files), then how to load each config (pinned to the
release's tag), rows per config and class in the layout of the paper's Table 1, the
configs, mixtures (counts per component and class, class-distribution plot), columns,
train/test assignment, provenance (toolkit, manifest, taxonomy, template and prompt
hashes, models with revision and sampling, recipes), the paper's citation and the
changelog.

Every config the header declares loads with a plain `datasets.load_dataset(repo, config)`:
`datasets` refuses a split without rows ("corresponds to no data"), so a config is
declared with the sides that have rows, and one without any row is listed in the text
only. The clip column `video` stays a string (the clip's path in the repository): the
Hub's viewer shows videos from Parquet only when their bytes are embedded, and a `Video`
feature would make `load_dataset` need a video decoder; the card says how to fetch clips.

The card has no timestamp: the same folder renders the same bytes.

Over 400 lines: one function per section of the card, in the card's order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG = "mcq"
MIX_PREFIX = "mix-"
FAILURES_CONFIG = "failures"  # builders/generate/failures.py CONFIG: not training rows
DEFAULT_LICENSE = "other"
LICENSE_FILE = "LICENSE.md"  # a release's terms; the card's `license_link` for `other`
CITATION = """@misc{bhat2026vlmautodrive,
  title         = {{VLM-AutoDrive}: Post-Training Vision-Language Models for
                   Safety-Critical Autonomous Driving Events},
  author        = {Bhat, Mohammad Qazim and Huang, Yufan and Agarwal, Niket and Wang, Hao
                   and Woods, Michael and Kenyon, John and Lin, Tsung-Yi and Yang, Xiaodong
                   and Liu, Ming-Yu and Xie, Kevin},
  year          = {2026},
  eprint        = {2603.18178},
  archivePrefix = {arXiv},
  primaryClass  = {cs.CV}
}"""
TASKS = ["video-text-to-text", "visual-question-answering", "video-classification"]
TAGS = ["autonomous-driving", "dashcam", "video", "safety-critical-events", "vlm-autodrive"]

COLUMN_DOCS = {
    "id": "stable row id: hash of (config, clip_id, row key); same across rebuilds and edits",
    "clip_id": "the clip (one row of chunk/clips.parquet)",
    "video_id": "the source video the clip was cut from",
    "label": "the clip's class",
    "split": "train or test (the side of the clip's source video)",
    "generator": "what made the row: rule:<name>, or model id and revision",
    "template": "template name@hash (the hash covers every template it includes)",
    "content_hash": "hash of the row's generated content; changes when the text changes",
    "video": "the clip file, relative to this folder",
    "question": "the user turn",
    "answer": "the assistant turn",
    "options": "class names in the order the question lists them (A, B, ...)",
    "answer_letter": "the letter of the correct option",
    "messages": "mixtures: system, user (video part + question) and assistant turns",
    "source_id": "mixtures: the id of the row this one was made from",
    "source_config": "mixtures: the config of that row",
    "copy": "mixtures: 0 for the row itself, 1.. for its upsampled copies",
}


@dataclass
class Release:
    """What a published version adds to the card."""

    version: str
    repo: str | None = None
    license: str = DEFAULT_LICENSE
    changelog: Any = None  # changelog.Changelog, or None when not computed


def size_category(rows: int) -> str:
    """The Hub's size category of a dataset with `rows` rows."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if rows < limit:
            return name
    return "100K<n<1M" if rows < 1_000_000 else "1M<n<10M"


def declared_sides(prov: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """config -> side -> data file, for what the card declares: the sides with rows of
    every config that has any (`load_dataset` refuses a split without rows)."""
    out = {}
    for name, entry in prov["configs"].items():
        sides = {s: v["path"] for s, v in entry["splits"].items() if v.get("rows", 1) > 0}
        if sides:
            out[name] = sides
    return out


def card_header(
    prov: Mapping[str, Any], license: str = DEFAULT_LICENSE, license_link: str | None = None
) -> dict[str, Any]:
    """The YAML header as a dict (the Hub's dataset card metadata). `license_link`: the
    file or URL of the terms, given for a release (its LICENSE.md) when license is other."""
    declared = declared_sides(prov)
    names = list(declared)
    default = DEFAULT_CONFIG if DEFAULT_CONFIG in names else (names[0] if names else None)
    configs = []
    for name in names:
        entry: dict[str, Any] = {"config_name": name}
        if name == default:
            entry["default"] = True
        entry["data_files"] = [{"split": s, "path": p} for s, p in declared[name].items()]
        configs.append(entry)
    rows = sum(v["rows"] for c in prov["configs"].values() for v in c["splits"].values())
    header: dict[str, Any] = {"license": license}
    if license == "other":
        # The Hub asks `other` licenses for a name; the clips keep their sources' terms.
        header["license_name"] = "source-video-terms"
        if license_link:
            header["license_link"] = license_link
    header.update(
        {
            "pretty_name": "vlm-autodrive dashcam event supervision",
            "language": ["en"],
            "task_categories": TASKS,
            "tags": TAGS,
            "size_categories": [size_category(rows)],
            "configs": configs,
        }
    )
    return header


def render_card(build_dir: Path, prov: Mapping[str, Any], release: Release | None = None) -> str:
    """The whole card of the folder `build_dir` (or of a release made from it)."""
    counts = _label_counts(build_dir, prov)
    classes = _class_order(prov, counts)
    license = release.license if release else DEFAULT_LICENSE
    link = LICENSE_FILE if release else None  # a release folder has its LICENSE.md
    header = card_header(prov, license, link)
    out = ["---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n"]
    toolkit = prov.get("toolkit", {})
    title = "# Dashcam event supervision for video VLMs"
    out.append(title + (f" (v{release.version})" if release else "") + "\n")
    out.append(
        f"Built by {toolkit.get('name', 'vlm-autodrive')} {toolkit.get('version', '')} "
        "from labelled dashcam videos cut into clips. Each config below is one kind of "
        "supervision; every row points at its clip by a path relative to this folder "
        "(column `video`), and clips are stored once under `clips/`.\n"
    )
    out.append(_load_section(prov, release))
    out.append(_table1_section(prov, counts, classes))
    out.append(_configs_section(prov))
    out.append(_mixtures_section(prov))
    out.append(_columns_section(build_dir, prov))
    out.append(_split_section(prov))
    from vlm_autodrive.builders.audit.report import card_section

    out.append(card_section(build_dir))  # `autodrive audit`'s summary, when it has run
    out.append(_provenance_section(prov))
    out.append("## Citation\n\nThe pipeline follows the VLM-AutoDrive paper (NVIDIA):\n\n"
               f"```bibtex\n{CITATION}\n```\n")  # fmt: skip
    if release is not None:
        out.append(license_text(license))
        if release.changelog is not None:
            out.append("## Changelog\n\n" + release.changelog.to_markdown())
    return "\n".join(s for s in out if s).rstrip() + "\n"


def _load_section(prov: Mapping[str, Any], release: Release | None) -> str:
    names = list(declared_sides(prov))
    if release and release.repo:
        where, pin = f'"{release.repo}"', f', revision="v{release.version}"'
    elif release:
        where, pin = f'"path/to/v{release.version}"', ""
    else:
        where, pin = '"path/to/this/folder"', ""
    lines = ["## Load\n", "```python", "from datasets import load_dataset", ""]
    lines += [f'{_var(n)} = load_dataset({where}, "{n}"{pin})' for n in names]
    lines.append("```\n")
    empty = [n for n in prov["configs"] if n not in names]
    if empty:
        lines.append(
            "Configs without rows in this build, so not declared (`load_dataset` cannot "
            "load a config without rows): " + ", ".join(f"`{n}`" for n in empty) + ".\n"
        )
    if release and release.repo:
        lines.append(
            f'`revision="v{release.version}"` pins this release; without it you get the newest.\n'
        )
    else:
        folder = where.strip('"')
        lines.append(
            f'A row\'s clip is `{folder}/` + `row["video"]` (the `video` column is the '
            'clip\'s path, as text). On the Hub, a version is pinned with `revision="vX.Y.Z"` '
            "(`autodrive publish` tags each release).\n"
        )
    if any(n.startswith(MIX_PREFIX) for n in names):
        lines.append(
            "Mixture configs (`mix-*`) hold `messages`: a system turn, the user turn (the "
            "clip's video part, then the question) and the answer. `autodrive train` reads "
            "them as they are. A plain TRL `SFTTrainer` needs "
            "`vlm_autodrive.trainer.VideoSFTCollator` as its `data_collator`: TRL has no "
            "video column, and without the collator the model trains on the text and never "
            "sees a pixel. LLaMA-Factory, Cosmos-Reason SFT and Qwen-VL's finetune scripts "
            "read them after `autodrive export --format llamafactory`, `cosmos-reason` or "
            "`llava`; lmms-eval reads the `mcq` test rows through the task folder of "
            "`autodrive export --format lmms-eval`. Their "
            "content parts are Arrow structs, so `datasets` returns every part with all of "
            "`type`, `text` and `video` (absent ones None): drop the None keys before a "
            "chat template sees them (`vlm_autodrive.builders.mix.conversations.chat_ready`).\n"
        )
    if release and release.repo:  # last: its heading ends the load section
        lines.append(
            "### Clips\n\nThe `video` column is the clip's path in the repository (text, "
            "not a `Video` feature: the Hub's viewer shows videos from Parquet only when "
            "their bytes are in the file, and a `Video` column would make `load_dataset` "
            "need a video decoder). Download the clips you need:\n\n```python\n"
            "from huggingface_hub import hf_hub_download, snapshot_download\n\n"
            f'clip = hf_hub_download({where}, row["video"], repo_type="dataset"{pin})\n'
            f'folder = snapshot_download({where}, repo_type="dataset"{pin}, '
            'allow_patterns=["clips/*"])  # all of them\n```\n'
        )
    return "\n".join(lines)


def _var(name: str) -> str:
    return name.replace("-", "_")


def _table1_section(prov: Mapping[str, Any], counts: dict, classes: list[str]) -> str:
    """Rows per config (rows) and class (columns), train and test, as the paper's Table 1.
    The total row adds the configs' rows, not the mixtures' (made of the same rows) nor
    the `failures` config's (samples the models failed: not training data), which is
    shown below it."""
    if not counts:
        return ""
    lines = ["## Rows per config and class\n"]
    for side in ("train", "test"):
        names = [n for n in prov["configs"] if counts.get(n, {}).get(side)]
        if not names:
            continue
        lines.append(f"**{side}**\n")
        lines.append("| config | " + " | ".join(classes) + " | total |")
        lines.append("|---|" + "---:|" * (len(classes) + 1))
        totals = dict.fromkeys(classes, 0)
        counted = [n for n in names if not n.startswith(MIX_PREFIX) and n != FAILURES_CONFIG]
        for n in names:
            if n == FAILURES_CONFIG:
                continue  # below the total: failed samples are not training data
            per = counts[n][side]
            for c in classes:
                totals[c] += per.get(c, 0) if n in counted else 0
            cells = " | ".join(f"{per.get(c, 0):,}" for c in classes)
            lines.append(f"| `{n}` | {cells} | {sum(per.values()):,} |")
        failed = FAILURES_CONFIG in names
        if len(counted) > 1 or (counted and failed):
            what = "no mixtures, no failures" if failed else "no mixtures"
            cells = " | ".join(f"{totals[c]:,}" for c in classes)
            lines.append(f"| all configs ({what}) | {cells} | {sum(totals.values()):,} |")
        if failed:
            per = counts[FAILURES_CONFIG][side]
            cells = " | ".join(f"{per.get(c, 0):,}" for c in classes)
            lines.append(
                f"| `{FAILURES_CONFIG}` (failed samples) | {cells} | {sum(per.values()):,} |"
            )
        lines.append("")
    return "\n".join(lines)


def _configs_section(prov: Mapping[str, Any]) -> str:
    lines = ["## Configs\n", "| config | description | train | test | generator | template |"]
    lines.append("|---|---|---:|---:|---|---|")
    for name, c in prov["configs"].items():
        rows = {s: c["splits"][s]["rows"] for s in c["splits"]}
        lines.append(
            f"| `{name}` | {c['description']} | {rows.get('train', 0)} | {rows.get('test', 0)} "
            f"| `{c['generator']}` | `{c['template']}` |"
        )
    return "\n".join(lines) + "\n"


def _mixtures_section(prov: Mapping[str, Any]) -> str:
    from vlm_autodrive.builders.mix.report import markdown_table

    mixes = [(k, v) for k, v in prov.get("stages", {}).items() if v.get("kind") == "mixture"]
    mixes = [(k, v) for k, v in mixes if v.get("config") in prov["configs"]]
    if not mixes:
        return ""
    lines = ["## Mixtures\n"]
    for _, info in mixes:
        fmt = info["recipe"]["conversation"]
        lines.append(f"### `{info['config']}`\n")
        lines.append(
            f"From `{info['recipe_path']}` (seed {info['recipe']['seed']}, sides "
            f"{', '.join(info['recipe']['splits'])}). System prompt "
            f"`{fmt['system_prompt']}`; reasoning rows: "
            + (f"`{fmt['reasoning_system_prompt']}`, think form" if fmt["reasoning"] else
               "answer only")
            + ". Rows are grouped by component; shuffle when training (the Trainer's "
            "sampler does).\n"
        )  # fmt: skip
        lines.append(markdown_table(info["report"]))
        if info.get("plot"):
            lines.append(f"![class distribution of {info['config']}]({info['plot']})\n")
    return "\n".join(lines)


def _columns_section(build_dir: Path, prov: Mapping[str, Any]) -> str:
    import pyarrow.parquet as pq

    lines = ["## Columns\n"]
    seen: set[str] = set()
    for name, c in prov["configs"].items():
        schema = None
        for side in c["splits"].values():  # the first file that reads (see _count_labels)
            try:
                schema = pq.read_schema(Path(build_dir) / side["path"])
                break
            except (OSError, ValueError):
                continue
        if schema is None:
            continue
        lines.append(f"- `{name}`: " + ", ".join(f"`{f.name}` ({f.type})" for f in schema))
        seen.update(schema.names)
    lines.append("")
    lines += [f"- `{col}`: {doc}" for col, doc in COLUMN_DOCS.items() if col in seen]
    return "\n".join(lines) + "\n"


def _split_section(prov: Mapping[str, Any]) -> str:
    split = prov.get("stages", {}).get("rule_splits", {}).get("assignment")
    if not split:
        return ""
    return (
        "## Train and test\n\n"
        "Split by source video: no video has clips on both sides. The test set has "
        f"{split['test_per_class']} clips per class (seed {split['seed']}) drawn from "
        "held-out videos; their other clips are in no split. Every config follows the same "
        f"assignment: `{split['path']}` (clip_id -> train/test/held_out).\n"
    )


def _provenance_section(prov: Mapping[str, Any]) -> str:
    lines = ["## Provenance\n", "Full record: `provenance.json`.\n"]
    toolkit = prov.get("toolkit", {})
    lines.append(f"- toolkit: {toolkit.get('name', 'vlm-autodrive')} {toolkit.get('version', '?')}")
    manifest = prov.get("manifest") or {}
    if manifest:
        sha = manifest.get("sha256")
        lines.append(
            f"- manifest: `{manifest.get('path')}`"
            + (f" sha256 `{sha[:12]}`" if sha else " (not a file: no hash)")
        )
    for stage, info in prov.get("stages", {}).items():
        if "taxonomy_sha256" in info:
            lines.append(f"- {stage}: taxonomy sha256 `{info['taxonomy_sha256'][:12]}`")
        for kind in ("templates", "prompts", "system_prompts"):
            what = kind[:-1].replace("_", " ")
            for name, sha in (info.get(kind) or {}).items():
                lines.append(f"- {stage}: {what} `{name}` sha256 `{sha[:12]}`")
        lines += [f"- {stage}: {m}" for m in _models(info)]
    recipe = prov.get("recipe")
    if recipe:
        lines.append("\n<details><summary>build recipe</summary>\n")
        lines.append("```yaml\n" + yaml.safe_dump(recipe, sort_keys=True).rstrip() + "\n```")
        lines.append("</details>")
    return "\n".join(lines) + "\n"


def _models(info: Mapping[str, Any]) -> list[str]:
    """Model lines of a stage: `models` (config -> settings, or a list) or `model`."""
    models = info.get("models")
    if models is None and info.get("model"):
        models = {"": {"model": info["model"], "sampling": info.get("sampling")}}
    if isinstance(models, list):
        models = {str(i): m for i, m in enumerate(models)}
    out = []
    for name, m in (models or {}).items():
        if not isinstance(m, Mapping):
            out.append(f"model {f'for `{name}` ' if name else ''}`{m}`")
            continue
        ident = m.get("model") or m.get("id") or m.get("model_id")
        rev = m.get("revision")
        rest = {k: v for k, v in m.items() if k not in ("model", "id", "model_id", "revision")}
        out.append(
            f"model {f'for `{name}` ' if name else ''}`{ident}`"
            + (f" revision `{rev}`" if rev else "")
            + (f" {json.dumps(rest, sort_keys=True)}" if rest else "")
        )
    return out


def license_text(license: str) -> str:
    """The card's license section, also a release's LICENSE.md (the `license_link` of
    a card whose license is `other`)."""
    if license == "other":
        return (
            "## License\n\nThe clips are cut from the source videos, whose terms apply to "
            "them and to everything derived from them. The publisher chose no other license "
            "(`autodrive publish --license`).\n"
        )
    return f"## License\n\n`{license}`; the source videos' terms also apply to the clips.\n"


# A data file's class counts by its sha256 (as provenance.json records it): one build
# renders the card after each stage, and the files of the stages before are unchanged.
_COUNTED: dict[str, dict[str, int] | None] = {}


def _label_counts(build_dir: Path, prov: Mapping[str, Any]) -> dict[str, dict[str, dict]]:
    """config -> side -> class -> rows, read from the `label` column of every data file."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for name, c in prov["configs"].items():
        for side, v in c["splits"].items():
            sha = v.get("sha256")
            if sha and sha in _COUNTED:
                counts = _COUNTED[sha]
            else:
                counts = _count_labels(Path(build_dir) / v["path"])
                if sha:
                    _COUNTED[sha] = counts
            if counts is not None:
                out.setdefault(name, {})[side] = counts
    return out


def _count_labels(path: Path) -> dict[str, int] | None:
    """class -> rows of a data file; None when it has no `label` column, or cannot be
    read: a stage writes the card while a later stage's file is damaged or gone, and
    that stage makes it again (and writes the card again) in the same build; publish
    refuses any file that is not what its stage recorded."""
    import pyarrow.parquet as pq

    try:
        if "label" not in pq.read_schema(path).names:
            return None
    except (OSError, ValueError):  # missing, truncated, not Parquet (ArrowInvalid)
        return None
    counts = pq.read_table(path, columns=["label"]).column("label").value_counts()
    return {d["values"]: d["counts"] for d in counts.to_pylist()}


def _class_order(prov: Mapping[str, Any], counts: dict) -> list[str]:
    """The taxonomy's (the paper's) order for known classes, then any others by name."""
    from vlm_autodrive.builders.core.taxonomy import load_taxonomy, taxonomy_from_provenance

    seen = {c for per_side in counts.values() for per in per_side.values() for c in per}
    try:
        recorded = taxonomy_from_provenance(prov)
        order = (recorded or load_taxonomy((prov.get("recipe") or {}).get("taxonomy"))).names
    except (OSError, ValueError):
        order = []
    return [c for c in order if c in seen] + sorted(seen - set(order))
