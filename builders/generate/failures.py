"""The `failures` config: every sample that did not become rows, with its raw output.

Kinds (`KINDS`): `error` (the backend gave up after its retries), `parse` (the output is
not usable: the reason says why, control characters and invalid Unicode included),
`degenerate` (well formed but degenerate: repetition, placeholder or duplicate options,
an answer copied into its question, ...; the reason starts with one of
`degenerate.REASONS`), `filtered` (well formed but not kept by the split's rule, e.g. a
reasoning trace with a wrong answer), `render` (the prompt template failed for this clip).
`autodrive build --retry-failed` re-sends `error`, `parse` and `degenerate` failures.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import pyarrow as pa

from vlm_autodrive.builders.core.private import scrub_text
from vlm_autodrive.builders.dataset.rows import row_id, rows_to_table

if TYPE_CHECKING:
    from vlm_autodrive.builders.generate.backends.base import Completion

CONFIG = "failures"
KINDS = ("error", "parse", "degenerate", "filtered", "render")
RETRYABLE = ("error", "parse", "degenerate")


@dataclass(slots=True)
class FailureRow:
    """One failed sample; `request_id` is the cache key of the request it belongs to."""

    id: str
    request_id: str
    config: str
    clip_id: str
    video_id: str
    label: str
    split: str
    sample: int
    kind: str
    reason: str
    raw_output: str | None
    reasoning: str | None
    attempts: int
    generator: str
    template: str
    video: str


FAILURES_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("request_id", pa.string()),
        ("config", pa.string()),
        ("clip_id", pa.string()),
        ("video_id", pa.string()),
        ("label", pa.string()),
        ("split", pa.string()),
        ("sample", pa.int32()),
        ("kind", pa.string()),
        ("reason", pa.string()),
        ("raw_output", pa.string()),
        ("reasoning", pa.string()),
        ("attempts", pa.int32()),
        ("generator", pa.string()),
        ("template", pa.string()),
        ("video", pa.string()),
    ]
)


def failure_id(config: str, clip_id: str, sample: int, revises: str | None = None) -> str:
    """Stable id of a failed sample (of one revised failure, for reasoning_revised)."""
    if revises is None:
        return row_id(CONFIG, clip_id, config, sample)
    return row_id(CONFIG, clip_id, config, sample, revises)


def failure_row(
    split, clip, sample, kind, reason, comp: Completion | None, attempts, common_base, key
) -> FailureRow:
    """The failure row of one sample of a clip (`kind`: one of KINDS)."""
    return FailureRow(
        id=failure_id(split.name, clip.clip_id, sample, clip.revises),
        request_id=key,
        config=split.name,
        clip_id=clip.clip_id,
        video_id=clip.video_id,
        label=clip.label,
        split=clip.split,
        sample=sample,
        kind=kind,
        reason=scrub_text(reason),  # no server URL in a published row
        raw_output=storable(comp.text) if comp else None,
        reasoning=storable(comp.reasoning) if comp else None,
        attempts=attempts,
        generator=common_base["generator"],
        template=common_base["template"],
        video=clip.video,
    )


def storable(text: str | None) -> str | None:
    """The raw text as Parquet can hold it: a lone surrogate (invalid Unicode, no UTF-8
    form) becomes its `\\udXXX` escape; everything else is kept as it came."""
    if text is None:
        return None
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def failures_table(rows: list[FailureRow]) -> pa.Table:
    """Failures as a table of FAILURES_SCHEMA, in their order."""
    return rows_to_table(rows, FAILURES_SCHEMA)


def failure_rows(table: pa.Table) -> list[FailureRow]:
    """A table of FAILURES_SCHEMA as records, in its order (built by columns,
    positionally: `FailureRow(**row)` per dict cost ~3x as much)."""
    columns = (table[f.name].to_pylist() for f in fields(FailureRow))
    return list(map(FailureRow, *columns))


def failure_counts(table: pa.Table) -> dict[str, int]:
    """{kind: failures} of a table of FAILURES_SCHEMA, by kind (a report's `failed`)."""
    kinds = table["kind"].value_counts().to_pylist()
    return dict(sorted((k["values"], k["counts"]) for k in kinds))
