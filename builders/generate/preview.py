"""The dry run's view of the stages before the model splits: what they would produce.

In: the build folder, the recipe (manifest, chunk settings, rule splits settings), the
taxonomy. Out: an `UpstreamPreview`: the clips the model splits would read after a real
run of ingest, chunk and the rule splits (each with its side, detailed caption and MCQ),
or None for them when every one of those stages is up to date (the model splits then
read the build folder as it is), plus lines saying what each stage would do and, per
rule config, how many rows would change.

Nothing is written. Each stage is planned by its own code: ingest probes only the new or
changed files (`preview_ingest`), chunk plans and labels without cutting
(`preview_chunk`), the rule splits compute their rows in memory (`compute_rule_rows`).
A new build (no ingest yet) is planned from the manifest alone; when the recipe's
`sample` stage has not made the manifest yet, the sample is generated into a temporary
folder first (same seed, same videos) and deleted after.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.files import file_sha256
from vlm_autodrive.builders.core.recipe import ChunkConfig
from vlm_autodrive.builders.core.stage import Stage
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.generate.inputs import make_clip_inputs, read_config, video_facts
from vlm_autodrive.builders.generate.tasks.base import NOT_CUT, ClipInput


@dataclass
class UpstreamPreview:
    clips: list[ClipInput] | None  # None: upstream up to date, read the build folder
    lines: list[str] = field(default_factory=list)
    rule_changes: dict[str, int] = field(default_factory=dict)  # config -> rows changed


def preview_upstream(
    build_dir: Path,
    recipe: Any,
    taxonomy: Taxonomy,
    chunk_config: ChunkConfig,
    *,
    force: bool = False,
    workers: int = 1,
) -> UpstreamPreview:
    """What ingest, chunk and the rule splits of `recipe` would leave (see the module)."""
    from vlm_autodrive.builders.clips.preview import preview_chunk
    from vlm_autodrive.builders.ingest.stage import preview_ingest

    with ExitStack() as stack:
        manifest = Path(recipe.manifest)
        lines = []
        if recipe.sample and not manifest.exists():
            from vlm_autodrive.builders.synthetic.sample import generate_sample

            s = recipe.sample
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dry-run-")))
            lines.append(
                f"[sample] would generate {s.videos} videos (planned from a temporary copy)"
            )
            manifest = generate_sample(tmp, **s.model_dump())
        ing = preview_ingest(manifest, build_dir, taxonomy, workers)
        lines.append(
            f"[ingest] {'would record' if ing.changed else 'up to date:'} "
            f"{len(ing.videos)} videos, {ing.rejects} rejected"
        )
        ch = preview_chunk(build_dir, ing.videos, ing.same_file, chunk_config, taxonomy, force)
        lines.append(
            f"[chunk] would cut {ch.cut} videos ({ch.recut} of them again), remove "
            f"{ch.removed}: {len(ch.clips)} clips, {ch.rejected} videos rejected"
        )
        return _preview_rules(build_dir, recipe, taxonomy, ing, ch, lines)


def _preview_rules(build_dir, recipe, taxonomy, ing, ch, lines) -> UpstreamPreview:
    import pyarrow as pa

    from vlm_autodrive.builders.ingest.records import VIDEO_SCHEMA
    from vlm_autodrive.builders.rules.stage import VIDEO_COLUMNS

    if not ing.changed and not ch.changed:  # the tables on disk are what a run reads
        return preview_rules(build_dir, recipe, taxonomy, lines=lines)
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
) -> UpstreamPreview:
    """The rule splits as a run would leave them, from the ingest and chunk tables on
    disk, or from `planned` (clip table rows, videos by id, clip id -> file hash) when
    those stages would change them: None for the clips when the stage is up to date."""
    from vlm_autodrive.builders.dataset.assign import pinned_assignment_path
    from vlm_autodrive.builders.rules.stage import (
        _read_inputs,
        check_inputs,
        compute_rule_rows,
        load_rule_templates,
        rule_stage_key,
    )

    lines = [] if lines is None else lines
    config = recipe.splits
    templates = load_rule_templates(config, taxonomy)
    pin = config.pin_assignment
    pinned_path = pinned_assignment_path(pin) if pin else None
    if planned is None:
        tables = ("ingest/videos.parquet", "chunk/clips.parquet")
        inputs = {r: file_sha256(build_dir / r) for r in tables}
        if pinned_path is not None:
            inputs["pin_assignment"] = file_sha256(pinned_path)
        recipe_dict = recipe.model_dump(mode="json")
        key = rule_stage_key(build_dir, config, taxonomy, templates, recipe_dict, inputs)
        if Stage(build_dir, "rule_splits").finished(key) is not None:
            lines.append("[rule splits] up to date")
            return UpstreamPreview(None, lines)
        clips, videos = _read_inputs(build_dir, taxonomy)
        hashes = None
    else:
        table, videos, hashes = planned
        clips, videos = check_inputs(table, videos, taxonomy)
    rules = compute_rule_rows(clips, videos, config, taxonomy, templates, pinned_path)
    sides = {c: s for c, s in rules.assignment.sides.items() if s != "held_out"}
    rows = {c.name: [r for t in c.tables.values() for r in t.to_pylist()] for c in rules.configs}
    changes = {
        name: row_changes(_disk_rows(build_dir, name), {r["id"]: r["content_hash"] for r in new})
        for name, new in rows.items()
    }
    lines.append(
        "[rule splits] rows that would change (added, removed or changed): "
        + ", ".join(f"{n} {k}" for n, k in changes.items())
    )
    captions = {r["clip_id"]: r["answer"] for r in rows.get("caption_metadata", [])}
    mcq = {r["clip_id"]: r for r in rows.get("mcq", [])}
    cause = {r["clip_id"]: r for r in rows.get("cause_vqa", [])}
    facts = video_facts(videos, taxonomy)
    inputs = make_clip_inputs(build_dir, clips, sides, captions, mcq, cause, facts, hashes)
    return UpstreamPreview(inputs, lines, changes)


def _disk_rows(build_dir: Path, name: str) -> dict[str, str]:
    return {
        r["id"]: r["content_hash"] for r in read_config(build_dir, name, ["id", "content_hash"])
    }


def row_changes(old: dict[str, str], new: dict[str, str]) -> int:
    """Rows added, removed or changed (same id, other content) from `old` to `new`
    (id -> content hash)."""
    return sum(1 for i in old.keys() | new.keys() if old.get(i) != new.get(i))
