"""The columns every row of every split carries (README, "Data model"), and their helpers.

`SplitRow` is the base of each split's record type (`McqRow`, `CaptionMetadataRow`, and
the model-generated splits later); its fields are the first Arrow columns of every config:

- `id`: stable across rebuilds and template edits: a hash of (config, clip_id, the
  row's key within the clip). It names the logical row, so a changelog can match rows
  of two dataset versions; `content_hash` says whether the row's text changed.
- `clip_id`, `video_id`, `label` (the clip's class), `split` (`train` or `test`).
- `generator`: `rule:<name>` for rule splits, model id and revision for model splits.
- `template`: `name@hash12` of the template (and everything it includes) that made it.
- `content_hash`: hash of the row's generated content (question, options, answer...).
- `video`: the clip's path relative to the dataset folder (clips are never copied).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pyarrow as pa

COMMON_FIELDS = [
    ("id", pa.string()),
    ("clip_id", pa.string()),
    ("video_id", pa.string()),
    ("label", pa.string()),
    ("split", pa.string()),
    ("generator", pa.string()),
    ("template", pa.string()),
    ("content_hash", pa.string()),
    ("video", pa.string()),
]


@dataclasses.dataclass(slots=True)
class SplitRow:
    """The common columns; each split's record type extends it with its own."""

    id: str
    clip_id: str
    video_id: str
    label: str
    split: str
    generator: str
    template: str
    content_hash: str
    video: str


def _digest(parts: tuple[Any, ...], size: int = 8) -> str:
    # \x1f (unit separator) cannot occur in ids or rendered text we join, so
    # ("a", "bc") and ("ab", "c") never collide.
    data = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return hashlib.blake2b(data, digest_size=size).hexdigest()


def row_id(config: str, clip_id: str, *key: Any) -> str:
    """A row's stable id (16 hex digits): config, clip and the row's key within the clip."""
    return _digest((config, clip_id, *key))


def content_hash(*parts: Any) -> str:
    """Hash of a row's generated content (16 hex digits); lists are joined element-wise."""
    flat: list[Any] = []
    for p in parts:
        flat.extend(p if isinstance(p, list | tuple) else [p])
        flat.append("\x1e")  # end of one part, so list boundaries count too
    return _digest(tuple(flat))


def rows_to_table(rows: list[Any], schema: pa.Schema) -> pa.Table:
    """Records (dataclasses whose fields are `schema`'s names) as a table, column by column
    (one `getattr` pass per column is several times faster than `asdict` per row)."""
    names = [f.name for f in dataclasses.fields(rows[0])] if rows else schema.names
    if names != schema.names:
        raise ValueError(f"record fields {names} differ from the schema's {schema.names}")
    columns = [pa.array([getattr(r, n) for r in rows], type=schema.field(n).type) for n in names]
    return pa.Table.from_arrays(columns, schema=schema)
