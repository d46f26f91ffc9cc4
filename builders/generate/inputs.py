"""What the model splits read: the clips with their texts from the rule configs, the
failures of the last build, and captions imported from a file."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.dataset.folder import DATA_DIR, data_files
from vlm_autodrive.builders.generate.failures import CONFIG as FAILURES
from vlm_autodrive.builders.generate.failures import RETRYABLE
from vlm_autodrive.builders.generate.tasks.base import ClipInput


def read_config(build_dir: Path, name: str, columns: list[str]) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    for rel in data_files(build_dir, name).values():
        path = build_dir / rel
        if path.exists():
            yield from pq.read_table(path, columns=columns).to_pylist()


def read_config_table(build_dir: Path, name: str, columns: list[str]):
    """A config's `columns` over all its data files, as one table (empty with those
    columns, as strings, when it has none)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [
        pq.read_table(build_dir / rel, columns=columns)
        for rel in data_files(build_dir, name).values()
        if (build_dir / rel).exists()
    ]
    if not tables:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    return pa.concat_tables(tables)


def read_clip_inputs(
    build_dir: Path, sides: dict[str, str], taxonomy: Taxonomy | None = None
) -> list[ClipInput]:
    """Every train/test clip with the texts the prompts need, sorted by clip id; with the
    taxonomy, also what its video's metadata says about it (`facts`)."""
    import pyarrow.parquet as pq

    if not (build_dir / DATA_DIR / "caption_metadata").is_dir():
        raise FileNotFoundError(
            f"{build_dir}: no caption_metadata config; the model splits are made from it "
            "(add it to rules.configs and build the rule splits first)"
        )
    captions = {
        r["clip_id"]: r["answer"]
        for r in read_config(build_dir, "caption_metadata", ["clip_id", "answer"])
    }
    question = ["clip_id", "question", "options", "answer_letter"]
    mcq = {r["clip_id"]: r for r in read_config(build_dir, "mcq", question)}
    cause = {r["clip_id"]: r for r in read_config(build_dir, "cause_vqa", question)}
    table = pq.read_table(
        build_dir / "chunk" / "clips.parquet", columns=["clip_id", "video_id", "label", "path"]
    ).to_pylist()
    videos = None
    path = build_dir / "ingest" / "videos.parquet"
    if taxonomy is not None and path.exists():
        columns = ["video_id", "event_time", "metadata"]
        videos = {v["video_id"]: v for v in pq.read_table(path, columns=columns).to_pylist()}
    facts = video_facts(videos, taxonomy) if videos is not None else None
    return make_clip_inputs(build_dir, table, sides, captions, mcq, cause, facts)


def make_clip_inputs(
    build_dir: Path,
    table: list[dict[str, Any]],
    sides: dict[str, str],
    captions: dict[str, str],
    mcq: dict[str, dict[str, Any]],
    cause: dict[str, dict[str, Any]] | None = None,
    facts: Callable[[str, str], dict[str, tuple[str, ...]]] | None = None,
    hashes: dict[str, str] | None = None,
) -> list[ClipInput]:
    """The train/test clips of a clip table (`clip_id`, `video_id`, `label`, `path`) with
    their texts (caption, MCQ and cause question rows by clip id), sorted by clip id;
    `facts` (video id, label) -> what the metadata says; `hashes` (clip id -> sha256 of
    its file) for clips the dry run plans before they are cut."""
    cause = cause or {}
    out = []
    # The folder resolved once: clip paths are plain files inside it (resolving each
    # clip's path cost more than the rest of reading the inputs).
    root = str(Path(build_dir).resolve())
    for c in sorted(table, key=lambda c: c["clip_id"]):
        side = sides.get(c["clip_id"])
        if side is None:
            continue
        m = mcq.get(c["clip_id"], {})
        q = cause.get(c["clip_id"], {})
        out.append(
            ClipInput(
                clip_id=c["clip_id"],
                video_id=c["video_id"],
                label=c["label"],
                split=side,
                video=c["path"],
                video_path=os.path.join(root, c["path"]),
                caption=captions.get(c["clip_id"]),
                vlm_caption=None,
                mcq_question=m.get("question"),
                mcq_options=tuple(m.get("options") or ()),
                mcq_answer_letter=m.get("answer_letter"),
                video_sha256=(hashes or {}).get(c["clip_id"]),
                facts=facts(c["video_id"], c["label"]) if facts else {},
                cause_question=q.get("question"),
                cause_options=tuple(q.get("options") or ()),
                cause_answer_letter=q.get("answer_letter"),
            )
        )
    return out


def video_facts(videos: dict[str, dict[str, Any]], taxonomy: Taxonomy):
    """A function (video id, clip label) -> the clip's facts, from the ingested videos
    (video id -> row with `event_time` and `metadata`)."""
    from vlm_autodrive.builders.generate.facts import clip_facts
    from vlm_autodrive.builders.rules.captions import MetadataNormalizer

    normalizer = MetadataNormalizer(taxonomy)
    by_video = {
        vid: (normalizer.video_inputs(v["metadata"]), v["event_time"] is not None)
        for vid, v in videos.items()
    }

    made: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}  # the clips of a video share them

    def facts(video_id: str, label: str) -> dict[str, tuple[str, ...]]:
        if video_id not in by_video:
            return {}
        if (video_id, label) not in made:
            inputs, has_event = by_video[video_id]
            made[video_id, label] = clip_facts(inputs, label, has_event, taxonomy)
        return made[video_id, label]

    return facts


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
