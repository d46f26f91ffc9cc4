"""The tables of the rule configs: this run's rows of the clips to compute, with the rows
the other clips keep (row_reuse.py), and the summary's counts taken from those tables.

In: the clips whose rows are computed (`todo`), every clip's side, the videos and their
caption inputs, the settings, taxonomy and templates, the render memo and the RowReuse.
Out: one `ConfigTables` per rule config (each side sorted by clip id, as a build from
scratch makes it), and a `Tally` of the answer letters, empty captions and event clips
without a cause question.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from vlm_autodrive.builders.dataset.folder import ConfigTables
from vlm_autodrive.builders.dataset.rows import rows_to_table
from vlm_autodrive.builders.rules.caption_metadata import (
    CAPTION_METADATA_SCHEMA,
    build_caption_metadata,
)
from vlm_autodrive.builders.rules.cause_vqa import build_cause_vqa
from vlm_autodrive.builders.rules.mcq import MCQ_SCHEMA, build_mcq
from vlm_autodrive.builders.rules.row_reuse import SIDES, RowReuse


def config_tables(
    todo: list[Mapping[str, Any]],
    sides: Mapping[str, str],
    videos: Mapping[str, Mapping[str, Any]],
    video_inputs: Mapping[str, Mapping[str, Any]],
    config: Any,
    taxonomy: Any,
    templates: Mapping[str, Any],
    renders: Any,
    reuse: RowReuse,
) -> list[ConfigTables]:
    """The tables of every config in `templates` (see the module)."""
    made: list[ConfigTables] = []
    if "mcq" in templates:
        rows, _ = build_mcq(
            todo, sides, taxonomy, templates["mcq"], config.mcq_options, config.seed
        )
        made.append(
            ConfigTables(
                "mcq",
                "The event-type question of each clip, one option per class "
                f"({config.mcq_options} option order).",
                "rule:mcq",
                templates["mcq"].ref,
                reuse.tables("mcq", rows_to_table(rows, MCQ_SCHEMA), MCQ_SCHEMA),
            )
        )
    if "caption_metadata" in templates:
        template = templates["caption_metadata"]
        digests: dict[str, list[str]] = {}  # clip id -> its renders, for the snapshot
        rows, _ = build_caption_metadata(
            todo, sides, videos, video_inputs, taxonomy, template, renders, digests
        )
        if renders is not None:
            reuse.carry_renders(renders, digests)
        made.append(
            ConfigTables(
                "caption_metadata",
                "An instruction to describe each clip, answered by the detailed caption "
                "that rules make from its video's metadata.",
                "rule:caption_metadata",
                template.ref,
                reuse.tables(
                    "caption_metadata",
                    rows_to_table(rows, CAPTION_METADATA_SCHEMA),
                    CAPTION_METADATA_SCHEMA,
                ),
            )
        )
    if "cause_vqa" in templates:
        rows, _ = build_cause_vqa(todo, sides, videos, taxonomy, templates["cause_vqa"])
        made.append(
            ConfigTables(
                "cause_vqa",
                "The source dataset's own cause-of-accident question of each event clip "
                "(e.g. MM-AU's five options), in its option order.",
                "rule:cause_vqa",
                templates["cause_vqa"].ref,
                reuse.tables("cause_vqa", rows_to_table(rows, MCQ_SCHEMA), MCQ_SCHEMA),
            )
        )
    return made


@dataclass
class Tally:
    """The summary's counts, taken from the final tables (kept and computed rows alike)."""

    letters: dict[str, dict[str, int]]  # side -> answer letter -> mcq rows
    empty_captions: int  # clips with a side but no caption_metadata row
    no_cause: int  # event clips with a side but no cause_vqa row


def tally_rows(
    tables: Mapping[str, Mapping[str, pa.Table]],
    clips: list[Mapping[str, Any]],
    sides: Mapping[str, str],
    taxonomy: Any,
) -> Tally:
    """Counts of `tables` (config -> side -> table): every clip with a side has one mcq
    row and one caption_metadata row unless its caption was empty, and every event clip
    with a side one cause_vqa row unless its video has no cause question. CountError
    when a table holds a clip twice or on a side it is not on, or mcq misses a clip."""
    _check_clips(tables, sides)
    letters = {}
    for side, t in sorted((tables.get("mcq") or {}).items()):
        if t.num_rows:
            counts = t["answer_letter"].value_counts().to_pylist()
            letters[side] = dict(sorted((c["values"], c["counts"]) for c in counts))

    def missing(config: str, expected: int) -> int:
        if config not in tables:
            return 0
        return expected - sum(t.num_rows for t in tables[config].values())

    event_classes = {k for k in taxonomy.names if taxonomy.is_event(k)}
    events = sum(1 for c in clips if c["label"] in event_classes and c["clip_id"] in sides)
    return Tally(letters, missing("caption_metadata", len(sides)), missing("cause_vqa", events))


def _check_clips(tables: Mapping[str, Mapping[str, pa.Table]], sides: Mapping[str, str]) -> None:
    """Each config's rows: one per clip at most, each on its clip's side; mcq: one per
    clip with a side (what the counts derived from the tables rest on)."""
    import pyarrow.compute as pc

    from vlm_autodrive.builders.core.stage import CountError

    on = {s: pa.array([c for c, x in sides.items() if x == s], pa.string()) for s in SIDES}
    for config, by_side in tables.items():
        for side, t in by_side.items():
            ids = t["clip_id"]
            if pc.count_distinct(ids).as_py() != t.num_rows:
                raise CountError(f"{config} ({side}): a clip has more than one row")
            if not pc.all(pc.is_in(ids, value_set=on[side])).as_py() and t.num_rows:
                raise CountError(f"{config} ({side}): rows of clips not on that side")
    mcq = sum(t.num_rows for t in tables.get("mcq", {}).values())
    if "mcq" in tables and mcq != len(sides):
        raise CountError(f"mcq: {mcq} rows for {len(sides)} clips with a side")
