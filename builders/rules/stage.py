"""Rule splits stage: clip table + metadata -> the `mcq` and `caption_metadata` configs.

Reads `ingest/videos.parquet` and `chunk/clips.parquet`; writes `split/assignment.parquet`
(each clip's side, reused by every later split), `data/<config>/{train,test}-<hash>.parquet`,
`provenance.json`, the dataset card `README.md`, and `rule_splits/summary.json`. No model
is involved: the text comes from the Jinja templates in `templates/` and the taxonomy.

Re-running with the same inputs, settings, taxonomy and templates does no work (the
stage key in the summary matches and the outputs are intact); anything else rebuilds,
and a rebuild writes byte-identical files. A rebuild computes the rows of the clips
whose own inputs changed only; the others keep the last run's (row_reuse.py), and
captions come from the render memo (render_memo.py).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vlm_autodrive import __version__
from vlm_autodrive.builders.core.errors import InputError
from vlm_autodrive.builders.core.files import file_sha256, write_json
from vlm_autodrive.builders.core.stage import Stage, content_key, require_stage_input
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.dataset.assign import (
    ASSIGNMENT_PATH,
    assign_splits,
    pinned_assignment_path,
    read_pinned,
    write_assignment,
)
from vlm_autodrive.builders.dataset.folder import ConfigTables, write_dataset_folder
from vlm_autodrive.builders.dataset.source_groups import source_groups
from vlm_autodrive.builders.rules.caption_metadata import (
    load_caption_metadata_template,
)
from vlm_autodrive.builders.rules.captions import MetadataNormalizer
from vlm_autodrive.builders.rules.cause_vqa import load_cause_template
from vlm_autodrive.builders.rules.config import RULE_CONFIGS, RuleSplitsConfig
from vlm_autodrive.builders.rules.mcq import load_mcq_template
from vlm_autodrive.builders.rules.render_memo import SUMMARY_KEY as RENDER_MEMO_KEY
from vlm_autodrive.builders.rules.render_memo import RenderMemo, open_render_memo
from vlm_autodrive.builders.rules.row_reuse import SUMMARY_KEY as ROW_REUSE_KEY
from vlm_autodrive.builders.rules.row_reuse import RowReuse, open_row_reuse, row_scope
from vlm_autodrive.builders.rules.rule_tables import config_tables, tally_rows
from vlm_autodrive.resources import bundled

SUMMARY_PATH = Path("rule_splits") / "summary.json"
__all__ = ["RuleSplitsConfig", "RuleSplitsSummary", "build_rule_splits"]


@dataclass
class RuleSplitsSummary:
    """What the stage did; `format()` is the text the CLI prints."""

    build_dir: str
    stage_key: str
    videos: int
    clips: int
    assignment: dict[str, Any]
    configs: dict[str, dict[str, dict[str, int]]]  # config -> split -> class -> rows
    answer_letters: dict[str, dict[str, int]]  # split -> letter -> mcq rows
    oov: dict[str, dict[str, int]]  # field -> raw value -> occurrences
    missing: dict[str, int]  # field -> videos without it
    templates: dict[str, str]  # name -> ref (name@hash12)
    empty_captions: int = 0  # caption_metadata rows skipped: nothing to say about the clip
    warnings: list[str] = field(default_factory=list)
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        """What summary.json stores: no folder path, so two builds compare byte for byte."""
        d = asdict(self)
        d.pop("skipped")
        d.pop("build_dir")
        return d

    def format(self) -> str:
        lines = [
            f"rule splits -> {self.build_dir}" + ("  (up to date, nothing to do)" * self.skipped)
        ]
        v = self.assignment["videos"]
        lines.append(
            f"  {self.clips} clips of {self.videos} videos; videos: {v['train']} train, "
            f"{v['test']} test (held out)"
        )
        if pin := self.assignment.get("pinned"):
            lines.append(
                f"  pinned assignment: {pin['old_videos']} videos kept their side; "
                f"{pin['new_videos']} new videos, {pin['new_test_videos']} of them held out"
            )
        lines.append("  clips per class: train / test / held out (in no split)")
        for k, c in self.assignment["clips"].items():
            lines.append(f"    {k:<20} {c['train']:>8} {c['test']:>6} {c['held_out']:>6}")
        if dup := self.assignment.get("duplicates"):
            lines.append(_duplicates_line(dup))
        for name, splits in self.configs.items():
            sizes = ", ".join(f"{s} {sum(c.values())}" for s, c in splits.items())
            lines.append(f"  {name}: {sizes}  ({self.templates.get(name, '')})")
        for split, letters in self.answer_letters.items():
            total = sum(letters.values()) or 1
            dist = "  ".join(f"{k} {100 * n / total:.1f}%" for k, n in letters.items())
            lines.append(f"  mcq answer letters ({split}): {dist}")
        if self.oov:
            lines.append("  values outside the taxonomy (phrased generically):")
            for f, values in self.oov.items():
                top = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
                more = f" (+{len(values) - 5} more)" if len(values) > 5 else ""
                lines.append(f"    {f}: " + ", ".join(f"{k!r} x{n}" for k, n in top) + more)
        if self.missing:
            miss = ", ".join(f"{k} {n}" for k, n in self.missing.items())
            lines.append(f"  videos missing a metadata field (sentence dropped): {miss}")
        if self.empty_captions:
            lines.append(
                f"  caption_metadata: {self.empty_captions} clips skipped, their caption was "
                "empty (no metadata and no event)"
            )
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def build_rule_splits(
    build_dir: Path,
    config: RuleSplitsConfig,
    taxonomy: Taxonomy,
    recipe_dict: dict[str, Any],
    *,
    force: bool = False,
    declared: str | None = None,
) -> RuleSplitsSummary:
    """Build the rule configs of `config` from the ingest and chunk tables in `build_dir`.

    `recipe_dict` is recorded in provenance.json. `declared`: the pipeline's key of the
    stage's declared inputs (builders/pipeline.py; None: derived here from `config`
    and `taxonomy`), part of the stage key with the input tables' hashes. Raises,
    with a message for the user: FileNotFoundError when a table or the templates folder
    is missing; ValueError on bad input: unknown labels, a broken template
    (TemplateLoadError), a class too small for the test (ShortClassError).
    Returns the summary; when nothing changed since the last run, the stored one with
    `skipped=True` (unless `force`).
    """
    build_dir = Path(build_dir)
    # As JSON will store it (paths become strings), so the stage key matches on re-runs.
    recipe_dict = json.loads(json.dumps(recipe_dict, default=str, sort_keys=True))
    templates = load_rule_templates(config, taxonomy)

    inputs = {
        rel: file_sha256(build_dir / rel)
        for rel in ("ingest/videos.parquet", "chunk/clips.parquet")
        if _require(build_dir / rel)
    }
    pinned_path = pinned_assignment_path(config.pin_assignment) if config.pin_assignment else None
    if pinned_path is not None:
        inputs["pin_assignment"] = file_sha256(pinned_path)
    taxonomy_sha = content_key(taxonomy.model_dump())
    if declared is None:
        declared = rule_declared_key(build_dir, config, taxonomy)
    key = rule_stage_key(declared, templates, inputs)
    stage = Stage(build_dir, "rule_splits")
    if not force and (done := stage.finished(key)) is not None:
        done.pop(RENDER_MEMO_KEY, None)
        done.pop(ROW_REUSE_KEY, None)
        return RuleSplitsSummary(build_dir=str(build_dir), **done, skipped=True)
    renders, reuse = open_last_run(build_dir, config, taxonomy, templates)  # before the stamp goes
    stage.invalidate()

    clips, videos = _read_inputs(build_dir, taxonomy)
    rules = compute_rule_rows(
        clips, videos, config, taxonomy, templates, pinned_path, renders, reuse
    )
    a, made, letters, empty_captions, normalizer, reuse = (
        rules.assignment,
        rules.configs,
        rules.letters,
        rules.empty_captions,
        rules.normalizer,
        rules.reuse,
    )
    write_assignment(build_dir, clips, a)

    stage_info = {
        "key": key,
        "configs": sorted(templates),
        "settings": config.model_dump(),
        "inputs": inputs,
        "taxonomy_sha256": taxonomy_sha,
        # The label set itself, so eval and the card read the build's classes wherever
        # the folder (or its release) is, without the recipe's taxonomy file.
        "taxonomy": taxonomy.model_dump(mode="json"),
        "templates": dict(sorted(h for t in templates.values() for h in t.source_hashes)),
        "assignment": {
            "path": ASSIGNMENT_PATH.as_posix(),
            "sha256": file_sha256(build_dir / ASSIGNMENT_PATH),
            "test_per_class": config.test_per_class,
            "seed": config.seed,
            "pinned": a.pinned,
        },
    }
    prov = write_dataset_folder(
        build_dir,
        made,
        stage="rule_splits",
        stage_info=stage_info,
        top={
            "toolkit": {"name": "vlm-autodrive", "version": __version__},
            "recipe": recipe_dict,
            "manifest": _manifest_info(recipe_dict),
        },
        drop=[c for c in RULE_CONFIGS if c not in templates],
    )
    summary = RuleSplitsSummary(
        build_dir=str(build_dir),
        stage_key=key,
        videos=len(videos),
        clips=len(clips),
        assignment={
            "videos": a.videos,
            "clips": a.counts,
            "pinned": a.pinned,
            "duplicates": rules.duplicates,
        },
        configs={c.name: _class_counts(c.tables) for c in made},
        answer_letters=letters,
        oov=normalizer.report(),
        missing=dict(sorted(normalizer.missing.items())),
        templates={n: t.ref for n, t in templates.items()},
        warnings=a.warnings,
        empty_captions=empty_captions,
    )
    write_json(build_dir / SUMMARY_PATH, summary.to_dict())
    outputs = [ASSIGNMENT_PATH.as_posix(), SUMMARY_PATH.as_posix()]
    outputs += [
        v["path"] for c in made for v in prov["configs"].get(c.name, {}).get("splits", {}).values()
    ]
    files = {
        c.name: {s: v["path"] for s, v in prov["configs"].get(c.name, {}).get("splits", {}).items()}
        for c in made
    }
    memos = {
        RENDER_MEMO_KEY: renders.write(build_dir),
        ROW_REUSE_KEY: reuse.write(build_dir, files),
    }
    stage.commit(key, outputs, {**summary.to_dict(), **memos})
    return summary


def open_last_run(
    build_dir: Path, config: RuleSplitsConfig, taxonomy: Taxonomy, templates: dict[str, Any]
) -> tuple[RenderMemo, RowReuse]:
    """The last run's caption texts and rows, each trusted only when the stage's stamp
    records it and every output the stamp records is intact (read-only)."""
    last = Stage(build_dir, "rule_splits").intact_summary()
    code = render_scope(taxonomy)
    scope = row_scope(code, templates, config.model_dump())
    return open_render_memo(build_dir, code, last), open_row_reuse(build_dir, scope, last)


def render_scope(taxonomy: Taxonomy) -> str:
    """What every caption render reads besides its inputs and template: the stage's
    code and the taxonomy (the render memo's scope; the template's sha256 is per text)."""
    from vlm_autodrive.builders.pipeline import declared_key

    return declared_key("rule_splits", {}, taxonomy, None, upstream=False)


def load_rule_templates(config: RuleSplitsConfig, taxonomy: Taxonomy) -> dict[str, Any]:
    """The loaded, checked templates of the rule configs `config` names (by config name);
    `rules.templates` is searched before the bundled folder. Raises InputError or
    TemplateLoadError naming the folder or the template's file and line."""
    folders = [bundled("templates")]
    if config.templates:
        if not Path(config.templates).is_dir():
            raise InputError(config.templates, "not a folder", "rules.templates")
        folders.insert(0, Path(config.templates))
    templates = {}
    if "mcq" in config.configs:
        templates["mcq"] = load_mcq_template(taxonomy, folders)
    if "caption_metadata" in config.configs:
        templates["caption_metadata"] = load_caption_metadata_template(taxonomy, folders)
    if "cause_vqa" in config.configs:
        templates["cause_vqa"] = load_cause_template(folders)
    return templates


@dataclass
class RuleRows:
    """The rule splits of a clip table, in memory: the assignment and each config's rows."""

    assignment: Any
    configs: list[ConfigTables]
    letters: dict[str, dict[str, int]]
    empty_captions: int
    normalizer: MetadataNormalizer
    duplicates: dict[str, int] = field(default_factory=dict)  # SourceGroups.counts()
    reuse: RowReuse | None = None  # which clips kept their rows; the snapshot to write


def compute_rule_rows(
    clips: list[dict[str, Any]],
    videos: dict[str, dict[str, Any]],
    config: RuleSplitsConfig,
    taxonomy: Taxonomy,
    templates: dict[str, Any],
    pinned_path: Path | None,
    renders: RenderMemo | None = None,
    reuse: RowReuse | None = None,
) -> RuleRows:
    """Assign the clips (sorted by id, as `_read_inputs` gives them) to train/test and
    make the rows of every rule config; writes nothing (the stage and the dry run share
    it). `renders`: the last run's caption texts (render_memo.py), or None; `reuse`: the
    last run's rows (row_reuse.py), or None: only the clips whose inputs changed are
    computed, the others keep their rows. The counts come from the final tables."""
    groups = source_groups(videos)  # same bytes or a near-duplicate picture: one side
    a = assign_splits(
        clips,
        taxonomy.names,
        per_class=config.test_per_class,
        seed=config.seed,
        on_short=config.on_short,
        max_test_fraction=config.max_test_fraction,
        pinned=read_pinned(pinned_path) if pinned_path else None,
        groups=groups.of,
    )
    sides = {cid: s for cid, s in a.sides.items() if s != "held_out"}
    normalizer = MetadataNormalizer(taxonomy)  # counts oov and missing over every video
    video_inputs = {vid: normalizer.video_inputs(v["metadata"]) for vid, v in videos.items()}
    if reuse is None:
        reuse = RowReuse(row_scope(render_scope(taxonomy), templates, config.model_dump()))
    todo = reuse.select(clips, videos, sides)
    made = config_tables(
        todo, sides, videos, video_inputs, config, taxonomy, templates, renders, reuse
    )
    tally = tally_rows({c.name: c.tables for c in made}, clips, sides, taxonomy)
    if tally.no_cause:
        a.warnings.append(f"cause_vqa: {tally.no_cause} event clips have no cause question")
    return RuleRows(
        a, made, tally.letters, tally.empty_captions, normalizer, groups.counts(), reuse
    )


def rule_stage_key(declared: str, templates: dict[str, Any], inputs: dict[str, str]) -> str:
    """The stage key: the declared inputs' key (settings, taxonomy, code), the templates
    as loaded (bundled ones included) and `inputs` (the ingest and chunk tables' sha256,
    and the pinned assignment's)."""
    return content_key(
        {
            "declared": declared,
            "templates": {n: t.sha256 for n, t in templates.items()},
            "inputs": inputs,
        }
    )


def rule_declared_key(build_dir: Path, config: RuleSplitsConfig, taxonomy: Taxonomy) -> str:
    """The pipeline's key of this stage's declared inputs, for callers outside it."""
    from vlm_autodrive.builders.pipeline import declared_key

    return declared_key("rule_splits", {"rules": config}, taxonomy, build_dir)


def _require(path: Path) -> bool:
    require_stage_input(path.parent.parent, f"{path.parent.name}/{path.name}")
    return True


def _read_inputs(
    build_dir: Path, taxonomy: Taxonomy
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Clips (sorted by clip id, so row order never depends on the chunker's) and videos
    by id, checked against each other and the taxonomy."""
    import pyarrow.parquet as pq

    clips = pq.read_table(build_dir / "chunk" / "clips.parquet", columns=CLIP_COLUMNS).to_pylist()
    vt = pq.read_table(build_dir / "ingest" / "videos.parquet", columns=VIDEO_COLUMNS)
    videos = {v["video_id"]: v for v in vt.to_pylist()}
    return check_inputs(clips, videos, taxonomy)


CLIP_COLUMNS = ["clip_id", "video_id", "path", "label", "event_offset"]
VIDEO_COLUMNS = ["video_id", "label", "event_time", "metadata", "sha256", "perceptual_signature"]


def check_inputs(
    clips: list[dict[str, Any]], videos: dict[str, dict[str, Any]], taxonomy: Taxonomy
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The clip table (sorted by clip id) and the videos, checked against each other and
    the taxonomy; ValueError naming the table on a problem."""
    clips = sorted(clips, key=lambda c: c["clip_id"])
    ids = Counter(c["clip_id"] for c in clips)
    dups = [i for i, n in ids.items() if n > 1]
    if dups:
        raise ValueError(f"chunk/clips.parquet: clip ids repeat: {dups[:5]}")
    labels = Counter(c["label"] for c in clips)
    unknown = {k: n for k, n in labels.items() if k not in taxonomy.names}
    if unknown:
        raise ValueError(
            f"chunk/clips.parquet: labels not in the taxonomy {taxonomy.names}: {unknown}"
        )
    orphans = sorted({c["video_id"] for c in clips} - videos.keys())
    if orphans:
        raise ValueError(f"chunk/clips.parquet: clips of videos not ingested: {orphans[:5]}")
    if not clips:
        raise ValueError("chunk/clips.parquet has no clips: nothing to build")
    return clips, videos


def _duplicates_line(d: dict[str, int]) -> str:
    """The summary's line on the source groups kept on one side."""
    near = (
        f"{d['near_duplicate_groups']} near-duplicate group(s) of {d['near_duplicate_videos']} "
        "videos (a re-encoded or resized copy)"
    )
    if not d["videos_with_signature"]:
        near = "near-duplicates not checked (no signatures: ingest.near_duplicates off)"
    elif d["videos_without_signature"]:
        near += f", {d['videos_without_signature']} videos without a signature"
    return f"  kept on one side: {near}; {d['byte_identical_groups']} byte-identical group(s)"


def _class_counts(tables: dict[str, Any]) -> dict[str, dict[str, int]]:
    out = {}
    for split, t in tables.items():
        counts = t.column("label").value_counts().to_pylist()
        out[split] = dict(sorted((c["values"], c["counts"]) for c in counts))
    return out


def _manifest_info(recipe_dict: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest named by the recipe and its hash (None for a folder or a missing file)."""
    m = recipe_dict.get("manifest")
    if not m:
        return None
    p = Path(m)
    return {"path": str(m), "sha256": file_sha256(p) if p.is_file() else None}
