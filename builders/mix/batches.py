"""The mix stage's second pass: planned copies of source rows -> one Parquet file per side.

In: per component, a `ComponentPlan` (how many copies of each source row go in, from the
stage's first pass). Out: `data/mix-<name>/<side>-<hash>.parquet` with the MIX_SCHEMA
columns (see builders/mix/stage.py).

Each source file is read in record batches of BATCH_ROWS rows; each batch with rows
going in becomes one output record batch (so one row group): its rows are taken with
index arrays computed by numpy, its `messages` built by Arrow kernels straight into the
output rows (builders/mix/conversations.py). Python touches a row only to hash it (the
row id and content hash are blake2b digests, the same bytes as builders/dataset/rows.py).
No row becomes a Python dict, so memory stays flat in the row count.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vlm_autodrive.builders.core.files import text_sha256
from vlm_autodrive.builders.dataset.folder import DATA_DIR, store_data_file
from vlm_autodrive.builders.dataset.rows import content_hash
from vlm_autodrive.builders.mix.conversations import MESSAGES_TYPE, batch_messages
from vlm_autodrive.builders.mix.recipe import Component

BATCH_ROWS = 8192
MIX_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source_id", pa.string()),
        ("source_config", pa.string()),
        ("copy", pa.int32()),
        ("clip_id", pa.string()),
        ("video_id", pa.string()),
        ("label", pa.string()),
        ("split", pa.string()),
        ("video", pa.string()),
        ("content_hash", pa.string()),
        ("messages", MESSAGES_TYPE),
    ]
)
_SOURCE_COLUMNS = ["id", "clip_id", "video_id", "label", "video", "content_hash", "question"]
_SOURCE_COLUMNS += ["answer", "reasoning", "target"]
_HEX_DIGITS = 16  # blake2b, 8 bytes


@dataclass
class ComponentPlan:
    """What one component takes from one side: copies per source row, in file order."""

    index: int
    component: Component
    side: str
    path: Path | None  # None: the config has no rows on this side
    copies: np.ndarray  # int32, one per source row
    labels: np.ndarray  # class per source row (object array of str)
    system: str | None
    system_name: str | None
    reasoning: bool

    def class_counts(self) -> dict[str, dict[str, Any]]:
        """class -> source, taken (rows drawn), factor, asked, written."""
        out = {}
        for lab in sorted(set(self.labels.tolist())):
            mask = self.labels == lab
            c = self.component
            out[lab] = {
                "source": int(mask.sum()),
                "taken": int((self.copies[mask] > 0).sum()),
                "factor": c.factor(lab),
                "asked": int(mask.sum()) * c.factor(lab) if c.count is None and c.fraction is None
                else None,
                "written": int(self.copies[mask].sum()),
            }  # fmt: skip
        return out


def write_side(build_dir: Path, config: str, side: str, plans: list[ComponentPlan]) -> str | None:
    """Every component's rows of one side into one Parquet file, stored under its content
    name; its path relative to the build folder, or None when no row went in."""
    import pyarrow.parquet as pq

    tmp = build_dir / DATA_DIR / config / f".{side}.{os.getpid()}.parquet.tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    try:
        with pq.ParquetWriter(tmp, MIX_SCHEMA) as writer:
            for plan in plans:
                for batch in component_batches(plan, config):
                    writer.write_batch(batch)
                    rows += batch.num_rows
        # `datasets` cannot read a Parquet file without rows: such a side is left out.
        return store_data_file(build_dir, config, side, tmp) if rows else None
    finally:
        tmp.unlink(missing_ok=True)


def component_batches(plan: ComponentPlan, config: str) -> Iterator[pa.RecordBatch]:
    """The output record batches of one component, one per source record batch that has
    rows going in (so a file's row groups follow the source's batches)."""
    import pyarrow.parquet as pq

    if plan.path is None or not plan.copies.any():
        return
    pf = pq.ParquetFile(plan.path)
    cols = [c for c in _SOURCE_COLUMNS if c in pf.schema_arrow.names]
    hashed = ["content_hash"] if "content_hash" in cols else ["question", "answer"]
    fmt_key = f"{plan.system_name}:{text_sha256(plan.system or '')}:{plan.reasoning}"
    source_config = pa.scalar(plan.component.config, pa.string())
    side = pa.scalar(plan.side, pa.string())
    offset = 0
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=cols):
        m = plan.copies[offset : offset + batch.num_rows]
        offset += batch.num_rows
        total = int(m.sum())
        if total == 0:
            continue
        keep = np.flatnonzero(m)  # source rows that go in
        reps = m[keep]
        rows = np.repeat(keep, reps)  # the source row of each output row
        copy = np.arange(total, dtype=np.int32) - np.repeat(np.cumsum(reps) - reps, reps)
        kept = batch.select(["id", *hashed]).take(pa.array(keep)).to_pydict()
        src_hashes = (
            kept["content_hash"]
            if "content_hash" in kept
            else [content_hash(q, a) for q, a in zip(kept["question"], kept["answer"])]
        )
        per_kept = pa.array(np.repeat(np.arange(len(keep)), reps))
        out = batch.select(["id", "clip_id", "video_id", "label", "video"]).take(pa.array(rows))
        yield pa.record_batch(
            [
                row_ids(config, kept["id"], reps),
                out.column("id"),
                pa.repeat(source_config, total),
                pa.array(copy, pa.int32()),
                out.column("clip_id"),
                out.column("video_id"),
                out.column("label"),
                pa.repeat(side, total),
                out.column("video"),
                content_hashes(src_hashes, fmt_key).take(per_kept),
                batch_messages(batch, plan.system, plan.reasoning, rows),
            ],
            schema=MIX_SCHEMA,
        )


def row_ids(config: str, source_ids: list[str], copies: np.ndarray) -> pa.StringArray:
    """`rows.row_id(config, source_id, copy)` for copies 0..n-1 of each source row (n from
    `copies`), in that order: the same bytes hashed, inlined (the generic join costs more
    than the hash at 350k rows)."""
    prefix = hashlib.blake2b(f"{config}\x1f".encode(), digest_size=8)
    digests = []
    for s, n in zip(source_ids, copies.tolist()):
        for c in range(n):
            h = prefix.copy()
            h.update(f"{s}\x1f{c}".encode())
            digests.append(h.digest())
    return _hex_strings(digests)


def content_hashes(source_hashes: list[str], fmt_key: str) -> pa.StringArray:
    """`rows.content_hash(source_hash, fmt_key)` for many rows, inlined likewise: a row's
    content is its source's content in a conversation format."""
    b2 = hashlib.blake2b
    tail = f"\x1f\x1e\x1f{fmt_key}\x1f\x1e"
    return _hex_strings([b2(f"{h}{tail}".encode(), digest_size=8).digest() for h in source_hashes])


def _hex_strings(digests: list[bytes]) -> pa.StringArray:
    """8-byte digests -> their hex strings, as `hexdigest()` writes them, built from one
    hex text and fixed offsets (no Python string per row)."""
    text = b"".join(digests).hex().encode("ascii")
    offsets = np.arange(0, len(text) + 1, _HEX_DIGITS, dtype=np.int32)
    return pa.StringArray.from_buffers(len(digests), pa.py_buffer(offsets), pa.py_buffer(text))
