"""What the model splits read: the clips with their texts from the rule configs, the
failures of the last build, and captions imported from a file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.dataset.folder import DATA_DIR, data_files
from vlm_autodrive.builders.generate.failures import CONFIG as FAILURES
from vlm_autodrive.builders.generate.failures import RETRYABLE


def read_config(build_dir: Path, name: str, columns: list[str]) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    for rel in data_files(build_dir, name).values():
        path = build_dir / rel
        if path.exists():
            yield from pq.read_table(path, columns=columns).to_pylist()


def read_config_table(
    build_dir: Path, name: str, columns: list[str], *, skip_unreadable: bool = False
):
    """A config's `columns` over all its data files, as one table (empty with those
    columns, as strings, when it has none). `skip_unreadable`: a file that cannot be
    read (truncated, not Parquet) counts as absent, for what a stage is about to make
    again (the dry run's rows that would change); else it raises."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for rel in data_files(build_dir, name).values():
        if not (build_dir / rel).exists():
            continue
        try:
            tables.append(pq.read_table(build_dir / rel, columns=columns))
        except (OSError, ValueError):  # ArrowInvalid is a ValueError
            if not skip_unreadable:
                raise
    if not tables:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    return pa.concat_tables(tables)


def read_clip_sources(build_dir: Path, sides: dict[str, str], taxonomy: Taxonomy | None = None):
    """Every train/test clip with the texts the prompts need, sorted by clip id, as a
    `ClipSources` table (clip_sources.py); with the taxonomy, also what its video's
    metadata says about it (`facts`)."""
    import pyarrow.parquet as pq

    from vlm_autodrive.builders.generate.clip_sources import clip_sources

    if not (build_dir / DATA_DIR / "caption_metadata").is_dir():
        raise FileNotFoundError(
            f"{build_dir}: no caption_metadata config; the model splits are made from it "
            "(add it to rules.configs and build the rule splits first)"
        )
    question = ["clip_id", "question", "options", "answer_letter"]
    rules = {
        "caption_metadata": read_config_table(build_dir, "caption_metadata", ["clip_id", "answer"]),
        "mcq": read_config_table(build_dir, "mcq", question),
        "cause_vqa": read_config_table(build_dir, "cause_vqa", question),
    }
    table = pq.read_table(
        build_dir / "chunk" / "clips.parquet", columns=["clip_id", "video_id", "label", "path"]
    )
    videos = None
    path = build_dir / "ingest" / "videos.parquet"
    if taxonomy is not None and path.exists():
        videos = pq.read_table(path, columns=["video_id", "event_time", "metadata"])
    return clip_sources(build_dir, table, sides, rules, videos, taxonomy)


def failed_request_ids(build_dir: Path) -> set[str]:
    """Cache keys of the requests behind the retryable failures of the last build."""
    return {
        r["request_id"]
        for r in read_config(build_dir, FAILURES, ["request_id", "kind"])
        if r["kind"] in RETRYABLE and r["request_id"]
    }


def read_import(path: str) -> dict[str, str]:
    """Captions made elsewhere: one JSON object `{clip_id, caption}` (strings) a line.
    A line that is not one, or repeats a clip id, raises ValueError naming its line."""
    out: dict[str, str] = {}
    line_of: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not JSON: {e}") from None
            if not isinstance(obj, dict) or not {"clip_id", "caption"} <= set(obj):
                raise ValueError(f"{path}:{i}: need an object with clip_id and caption")
            clip_id, caption = obj["clip_id"], obj["caption"]
            for key, value in (("clip_id", clip_id), ("caption", caption)):
                if not isinstance(value, str):
                    raise ValueError(
                        f"{path}:{i}: {key} must be a string, not {type(value).__name__}"
                    )
            if clip_id in line_of:
                raise ValueError(
                    f"{path}:{i}: clip {clip_id} again (first on line {line_of[clip_id]})"
                )
            line_of[clip_id] = i
            out[clip_id] = caption
    return out
