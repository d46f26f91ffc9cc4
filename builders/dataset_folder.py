"""The build folder as a Hugging Face dataset: config Parquet files, dataset card, provenance.

In: the tables of one or more configs (split name -> Arrow table), from the stage that
made them, and that stage's provenance. Out, under the build folder:

- `data/<config>/{train,test}-00000-of-00001.parquet` (a split without rows is left out:
  `datasets` cannot read an empty Parquet file);
- `provenance.json`: toolkit version, recipe, manifest and input hashes, and per stage
  and config the taxonomy and template hashes, generators, row counts, file hashes;
- `README.md`: the dataset card, whose YAML header declares every config found in
  `provenance.json` with its data files, so `datasets.load_dataset(folder, config)` works.

Stages write their configs through `write_dataset_folder`; the card always describes
every config in the folder, so a later stage (model splits) adds configs without losing
the earlier ones. Nothing here has a timestamp: a rebuild writes identical bytes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from .stagefiles import atomic_write_text, file_sha256, read_json, write_json

DATA_DIR = "data"
CARD = "README.md"
PROVENANCE = "provenance.json"
SPLITS = ("train", "test")
DEFAULT_CONFIG = "mcq"

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
}


@dataclass
class ConfigTables:
    """One config to write: its tables per split and what the card says about it."""

    name: str
    description: str
    generator: str
    template: str
    tables: dict[str, pa.Table]


def data_files(name: str) -> dict[str, str]:
    """split -> Parquet path relative to the build folder."""
    return {s: f"{DATA_DIR}/{name}/{s}-00000-of-00001.parquet" for s in SPLITS}


def write_dataset_folder(
    build_dir: Path,
    configs: Iterable[ConfigTables],
    *,
    stage: str,
    stage_info: Mapping[str, Any],
    top: Mapping[str, Any],
    drop: Iterable[str] = (),
) -> dict[str, Any]:
    """Write the configs' Parquet files, update provenance.json, rewrite README.md.

    `stage_info` goes to `provenance.stages[stage]`; `top` updates the top level
    (toolkit, recipe, manifest). Configs named in `drop` (made by this stage earlier but
    not now) are deleted, so the folder never serves stale rows. Returns the provenance.
    """
    import pyarrow.parquet as pq

    prov_path = build_dir / PROVENANCE
    prov: dict[str, Any] = read_json(prov_path) if prov_path.exists() else {}
    prov.update(top)
    prov.setdefault("stages", {})[stage] = dict(stage_info)
    entries = prov.setdefault("configs", {})
    for name in drop:
        shutil.rmtree(build_dir / DATA_DIR / name, ignore_errors=True)
        entries.pop(name, None)
    for cfg in configs:
        splits = {}
        for split, rel in data_files(cfg.name).items():
            table = cfg.tables.get(split)
            path = build_dir / rel
            if table is None or table.num_rows == 0:
                # `datasets` cannot read a Parquet file without rows: an empty split
                # (test_per_class: 0) is left out of the folder and the card.
                path.unlink(missing_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            pq.write_table(table, tmp)
            tmp.replace(path)
            splits[split] = {"path": rel, "rows": table.num_rows, "sha256": file_sha256(path)}
        if not splits:
            shutil.rmtree(build_dir / DATA_DIR / cfg.name, ignore_errors=True)
            entries.pop(cfg.name, None)
            continue
        entries[cfg.name] = {
            "stage": stage,
            "description": cfg.description,
            "generator": cfg.generator,
            "template": cfg.template,
            "splits": splits,
        }
    # A config whose files someone deleted is not declared (load_dataset would fail).
    for name in [n for n in entries if not (build_dir / DATA_DIR / n).is_dir()]:
        entries.pop(name)
    prov["configs"] = dict(sorted(entries.items()))
    write_json(prov_path, prov)
    atomic_write_text(build_dir / CARD, render_card(build_dir, prov))
    return prov


def _card_header(prov: Mapping[str, Any]) -> str:
    names = list(prov["configs"])
    default = DEFAULT_CONFIG if DEFAULT_CONFIG in names else (names[0] if names else None)
    configs = []
    for name in names:
        entry: dict[str, Any] = {"config_name": name}
        if name == default:
            entry["default"] = True
        entry["data_files"] = [
            {"split": s, "path": v["path"]} for s, v in prov["configs"][name]["splits"].items()
        ]
        configs.append(entry)
    header = {
        "configs": configs,
        "pretty_name": "vlm-autodrive dashcam event supervision",
        "task_categories": ["video-text-to-text"],
        "tags": ["autonomous-driving", "dashcam", "video", "vlm-autodrive"],
    }
    return "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n"


def render_card(build_dir: Path, prov: Mapping[str, Any]) -> str:
    """The dataset card: YAML header with every config, then counts, columns, provenance."""
    import pyarrow.parquet as pq

    out = [_card_header(prov)]
    toolkit = prov.get("toolkit", {})
    out.append(
        "# Dashcam event supervision for video VLMs\n\n"
        f"Built by {toolkit.get('name', 'vlm-autodrive')} {toolkit.get('version', '')} "
        "from labelled dashcam videos cut into clips. Each config below is one kind of "
        "supervision; every row points at its clip by a path relative to this folder "
        "(column `video`), and clips are stored once under `clips/`.\n"
    )
    out.append(
        "## Load\n\n```python\nfrom datasets import load_dataset\n\n"
        'ds = load_dataset("path/to/this/folder", "mcq")  # or any config below\n'
        'row = ds["test"][0]\n'
        'clip = "path/to/this/folder/" + row["video"]\n```\n'
    )
    labels: dict[str, dict[str, dict[str, int]]] = {}
    out.append("## Configs\n\n| config | description | train | test | generator | template |")
    out.append("|---|---|---:|---:|---|---|")
    schemas = {}
    for name, c in prov["configs"].items():
        rows = {s: c["splits"][s]["rows"] for s in c["splits"]}
        out.append(
            f"| `{name}` | {c['description']} | {rows.get('train', 0)} | {rows.get('test', 0)} "
            f"| `{c['generator']}` | `{c['template']}` |"
        )
        for s, v in c["splits"].items():
            t = pq.read_table(build_dir / v["path"], columns=["label"])
            schemas.setdefault(name, pq.read_schema(build_dir / v["path"]))
            for lab, n in _value_counts(t.column("label")).items():
                labels.setdefault(lab, {}).setdefault(name, {})[s] = n
    out.append("")
    if labels:
        names = list(prov["configs"])
        out.append("### Rows per class\n")
        out.append("| class | " + " | ".join(f"{n} train | {n} test" for n in names) + " |")
        out.append("|---|" + "---:|---:|" * len(names))
        for lab in sorted(labels):
            per = labels[lab]
            cells = [
                f"{per.get(n, {}).get('train', 0)} | {per.get(n, {}).get('test', 0)}" for n in names
            ]
            out.append(f"| {lab} | " + " | ".join(cells) + " |")
        out.append("")
    out.append("## Columns\n")
    for name, schema in schemas.items():
        cols = ", ".join(f"`{f.name}` ({f.type})" for f in schema)
        out.append(f"- `{name}`: {cols}")
    out.append("")
    for col, doc in COLUMN_DOCS.items():
        out.append(f"- `{col}`: {doc}")
    out.append("")
    out.append(_split_section(prov))
    out.append(_provenance_section(prov))
    return "\n".join(out).rstrip() + "\n"


def _value_counts(col: pa.ChunkedArray) -> dict[str, int]:
    counts = col.value_counts().to_pylist()
    return {c["values"]: c["counts"] for c in counts}


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
    lines.append(f"- toolkit: {toolkit.get('name')} {toolkit.get('version')}")
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
        for name, sha in info.get("templates", {}).items():
            lines.append(f"- {stage}: template `{name}` sha256 `{sha[:12]}`")
    return "\n".join(lines) + "\n"
