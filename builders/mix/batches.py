"""The mix stage's second pass: planned copies of source rows -> one Parquet file per side.

In: per component, a `ComponentPlan` (how many copies of each source row go in, from the
stage's first pass). Out: `data/mix-<name>/<side>-<hash>.parquet` with the MIX_SCHEMA
columns (see builders/mix/stage.py).

Each source file is read in record batches of BATCH_ROWS rows; each batch with rows
going in becomes one output record batch (so one row group): its rows are taken with
index arrays computed by numpy, its `messages` built by Arrow kernels straight into the
output rows (builders/mix/conversations.py); a batch whose rows all go in once is not
copied. Row ids and content hashes are derived from the source's with numpy
(builders/mix/ids.py), and the ids of each side are counted for duplicates before its
file is stored. Each batch is written in a worker thread while the next is read and
built (`_write_behind`: in order, one at a time, so the bytes are a serial write's).
No row becomes a Python dict, so memory stays flat in the row count.
"""

from __future__ import annotations

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
from vlm_autodrive.builders.mix.ids import (
    duplicate_count,
    hex_strings,
    mixture_content_hashes,
    mixture_row_id_values,
)
from vlm_autodrive.builders.mix.recipe import Component, MixtureError

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
# Dictionary encoding pays for columns with few distinct values; a row group's row ids,
# source ids and content hashes are (nearly) all distinct, so those are written plain:
# the Table 1 mixture's file is 2.5% smaller and written ~8% faster, with the same rows.
_PLAIN_COLUMNS = ("id", "source_id", "content_hash")
_SOURCE_COLUMNS = ["id", "clip_id", "video_id", "label", "video", "content_hash", "question"]
_SOURCE_COLUMNS += ["answer", "reasoning", "target"]


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
    try:
        with pq.ParquetWriter(tmp, MIX_SCHEMA, **writer_options()) as writer:
            ids = _write_behind(writer, _side_batches(plans, config))
        all_ids = np.concatenate(ids) if ids else np.zeros(0, np.uint64)
        rows = len(all_ids)
        if dupes := duplicate_count(all_ids):
            values, counts = np.unique(all_ids, return_counts=True)
            example = format(int(values[counts > 1][0]), "016x")
            raise MixtureError(
                f"{config} ({side}): {dupes} of {rows:,} mixture row ids repeat another "
                f"(e.g. {example}): two source rows share an id (or their ids differ by the "
                "XOR of two copies' masks, a 64-bit collision). Nothing was written."
            )
        # `datasets` cannot read a Parquet file without rows: such a side is left out.
        return store_data_file(build_dir, config, side, tmp) if rows else None
    finally:
        tmp.unlink(missing_ok=True)


def writer_options() -> dict[str, Any]:
    """The ParquetWriter options of a mixture file besides its schema (MIX_SCHEMA): which
    columns get a dictionary. benchmarks/bench_mix.py writes the same bytes with them."""
    return {"use_dictionary": [c for c in _leaf_paths(MIX_SCHEMA) if c not in _PLAIN_COLUMNS]}


def _side_batches(
    plans: list[ComponentPlan], config: str
) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
    for plan in plans:
        yield from component_batches(plan, config)


def _write_behind(
    writer: Any, batches: Iterator[tuple[pa.RecordBatch, np.ndarray]]
) -> list[np.ndarray]:
    """Append `batches` to `writer` (a ParquetWriter), each in a worker thread while the
    next is read and built; returns their row id values (to count duplicates). Parquet
    encoding and compression, like Parquet reading and Arrow kernels, run without the
    GIL, so on two cores they overlap (wall time; the CPU time is the same). One write
    at a time, in order: the file's bytes are those of writing them one after the
    other. A failed write raises here; a failed batch waits for the write in flight."""
    from concurrent.futures import Future, ThreadPoolExecutor

    ids = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mix-writer") as pool:
        pending: Future | None = None
        for batch, values in batches:
            ids.append(values)
            if pending is not None:
                pending.result()
            pending = pool.submit(writer.write_batch, batch)
        if pending is not None:
            pending.result()
    return ids


def _leaf_paths(schema: pa.Schema) -> list[str]:
    """The Parquet column paths of `schema`'s leaves (`a.list.element.b` for a list of
    structs), the names `ParquetWriter(use_dictionary=...)` takes."""

    def walk(path: str, t: pa.DataType) -> list[str]:
        if pa.types.is_struct(t):
            return [p for f in t for p in walk(f"{path}.{f.name}", f.type)]
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return walk(f"{path}.list.element", t.value_type)
        return [path]

    return [p for f in schema for p in walk(f.name, f.type)]


def component_batches(
    plan: ComponentPlan, config: str
) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
    """The output record batches of one component, one per source record batch that has
    rows going in (so a file's row groups follow the source's batches), each with its
    rows' ids as uint64 values (builders/mix/ids.py)."""
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
        out = batch.select(["id", "clip_id", "video_id", "label", "video"])
        whole = total == batch.num_rows and len(keep) == total  # every row, once, in order
        if not whole:
            out = out.take(pa.array(rows))
        id_values = mixture_row_id_values(config, out.column("id"), copy)
        yield (
            pa.record_batch(
                [
                    hex_strings(id_values),
                    out.column("id"),
                    pa.repeat(source_config, total),
                    pa.array(copy, pa.int32()),
                    out.column("clip_id"),
                    out.column("video_id"),
                    out.column("label"),
                    pa.repeat(side, total),
                    out.column("video"),
                    mixture_content_hashes(_source_hashes(batch, hashed, rows, keep), fmt_key),
                    batch_messages(batch, plan.system, plan.reasoning, rows),
                ],
                schema=MIX_SCHEMA,
            ),
            id_values,
        )


def _source_hashes(
    batch: pa.RecordBatch, hashed: list[str], rows: np.ndarray, keep: np.ndarray
) -> pa.Array:
    """The source content hash of each output row: the `content_hash` column, or for a
    config without one, `rows.content_hash(question, answer)` of each row taken."""
    if hashed == ["content_hash"]:
        column = batch.column("content_hash")
        return column if len(rows) == len(column) == len(keep) else column.take(pa.array(rows))
    kept = batch.select(hashed).take(pa.array(keep)).to_pydict()
    per_kept = [content_hash(q, a) for q, a in zip(kept["question"], kept["answer"])]
    by_source = np.full(batch.num_rows, -1, np.int64)
    by_source[keep] = np.arange(len(keep))
    return pa.array(per_kept, pa.string()).take(pa.array(by_source[rows]))
