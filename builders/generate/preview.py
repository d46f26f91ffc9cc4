"""The dry run's plan of the rule splits: what they would produce.

In: the build folder, the recipe (rule splits settings), the taxonomy, and what the
planned ingest and chunk would leave (builders/pipeline.py walks sample, ingest and chunk
before this, each planned by its own code: `preview_ingest`, `preview_chunk`). Out: an
`UpstreamPreview`: the clips the model splits would read after a real run of ingest,
chunk and the rule splits (each with its side, detailed caption and MCQ), or None for
them when every one of those stages is up to date (the model splits then read the build
folder as it is), plus lines saying, per rule config, how many rows would change.

Nothing is written: the rule splits compute their rows in memory (`compute_rule_rows`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.files import file_sha256
from vlm_autodrive.builders.core.stage import Stage
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.generate.clip_sources import ClipSources, clip_sources
from vlm_autodrive.builders.generate.inputs import read_config_table
from vlm_autodrive.builders.generate.tasks.base import NOT_CUT


@dataclass
class UpstreamPreview:
    clips: ClipSources | None  # None: upstream up to date, read the build folder
    lines: list[str] = field(default_factory=list)
    rule_changes: dict[str, int] = field(default_factory=dict)  # config -> rows changed


def plan_rules(
    build_dir: Path,
    recipe: Any,
    taxonomy: Taxonomy,
    ing: Any,
    ch: Any,
    declared: Callable[[], str],
) -> UpstreamPreview:
    """The rule splits as a run after the planned ingest (`ing`, an IngestPreview) and
    chunk (`ch`, a ChunkPreview) would leave them (see the module); `declared` gives the
    pipeline's key of the stage's declared inputs."""
    return _preview_rules(build_dir, recipe, taxonomy, ing, ch, [], declared)


def _preview_rules(build_dir, recipe, taxonomy, ing, ch, lines, declared) -> UpstreamPreview:
    import pyarrow as pa

    from vlm_autodrive.builders.ingest.records import VIDEO_SCHEMA
    from vlm_autodrive.builders.rules.stage import VIDEO_COLUMNS

    if not ing.changed and not ch.changed:  # the tables on disk are what a run reads
        return preview_rules(build_dir, recipe, taxonomy, lines=lines, declared=declared())
    table = [
        {"clip_id": c.clip_id, "video_id": c.video_id, "path": c.path, "label": c.label,
         "event_offset": c.event_offset}
        for c in ch.clips
    ]  # fmt: skip
    # Through Arrow, as the rule stage reads them from ingest/videos.parquet.
    vt = pa.Table.from_pylist([v.model_dump() for v in ing.videos], schema=VIDEO_SCHEMA)
    videos = {v["video_id"]: v for v in vt.select(VIDEO_COLUMNS).to_pylist()}
    hashes = {c.clip_id: c.video_sha256 or f"{NOT_CUT}{c.clip_id}" for c in ch.clips}
    return preview_rules(build_dir, recipe, taxonomy, (table, videos, hashes), lines)


def preview_rules(
    build_dir: Path,
    recipe: Any,
    taxonomy: Taxonomy,
    planned: tuple | None = None,
    lines: list[str] | None = None,
    declared: str | None = None,
) -> UpstreamPreview:
    """The rule splits as a run would leave them, from the ingest and chunk tables on
    disk, or from `planned` (clip table rows, videos by id, clip id -> file hash) when
    those stages would change them: None for the clips when the stage is up to date."""
    import pyarrow as pa

    from vlm_autodrive.builders.dataset.assign import pinned_assignment_path
    from vlm_autodrive.builders.rules.stage import (
        _read_inputs,
        check_inputs,
        compute_rule_rows,
        load_rule_templates,
        open_last_run,
        rule_declared_key,
        rule_stage_key,
    )

    lines = [] if lines is None else lines
    config = recipe.rules
    templates = load_rule_templates(config, taxonomy)
    pin = config.pin_assignment
    pinned_path = pinned_assignment_path(pin) if pin else None
    if planned is None:
        tables = ("ingest/videos.parquet", "chunk/clips.parquet")
        inputs = {r: file_sha256(build_dir / r) for r in tables}
        if pinned_path is not None:
            inputs["pin_assignment"] = file_sha256(pinned_path)
        if declared is None:
            declared = rule_declared_key(build_dir, config, taxonomy)
        key = rule_stage_key(declared, templates, inputs)
        if Stage(build_dir, "rule_splits").finished(key) is not None:
            lines.append("[rule splits] up to date")
            return UpstreamPreview(None, lines)
        clips, videos = _read_inputs(build_dir, taxonomy)
        hashes = None
    else:
        table, videos, hashes = planned
        clips, videos = check_inputs(table, videos, taxonomy)
    # The last run's caption texts and rows, read only (render_memo.py, row_reuse.py):
    # the run renders and computes the same.
    renders, reuse = open_last_run(build_dir, config, taxonomy, templates)
    rules = compute_rule_rows(
        clips, videos, config, taxonomy, templates, pinned_path, renders, reuse
    )
    sides = {c: s for c, s in rules.assignment.sides.items() if s != "held_out"}
    tables = {c.name: pa.concat_tables(list(c.tables.values())) for c in rules.configs}
    changes = {
        name: changed_rows(read_config_table(build_dir, name, ["id", "content_hash"]), new)
        for name, new in tables.items()
    }
    lines.append(
        "[rule splits] rows that would change (added, removed or changed): "
        + ", ".join(f"{n} {k}" for n, k in changes.items())
    )
    from vlm_autodrive.builders.ingest.records import VIDEO_SCHEMA

    columns = ("clip_id", "video_id", "label", "path")
    clip_table = pa.table({k: pa.array([c[k] for c in clips], pa.string()) for k in columns})
    video_table = pa.table(
        {
            "video_id": pa.array(list(videos), pa.string()),
            "event_time": pa.array([v["event_time"] for v in videos.values()], pa.float64()),
            "metadata": pa.array(
                [v["metadata"] for v in videos.values()], VIDEO_SCHEMA.field("metadata").type
            ),
        }
    )
    inputs = clip_sources(build_dir, clip_table, sides, tables, video_table, taxonomy, hashes)
    return UpstreamPreview(inputs, lines, changes)


def changed_rows(old: Any, new: Any) -> int:
    """Rows added, removed or changed (same id, other content) from `old` to `new`
    (tables with `id` and `content_hash`), by one join."""
    import pyarrow.compute as pc

    cols = ["id", "content_hash"]
    joined = old.select(cols).join(
        new.select(cols), "id", join_type="full outer", left_suffix="_old", right_suffix="_new"
    )
    same = pc.equal(joined["content_hash_old"], joined["content_hash_new"]).fill_null(False)
    return joined.num_rows - (pc.sum(same.cast("int64")).as_py() or 0)
