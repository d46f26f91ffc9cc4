"""Ingest stage: manifest -> validated, probed video records (`ingest/videos.parquet`).

Writes `ingest/videos.parquet` (one `VideoRecord` per usable video), `ingest/rejects.jsonl`
(one `RejectRecord` per unusable row or file) and `ingest/stamp.json` (the stage base,
`core/stage.py`). Re-running with the same manifest and taxonomy does no work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from vlm_autodrive.builders.core.children import worker_pool
from vlm_autodrive.builders.core.errors import require_file
from vlm_autodrive.builders.core.files import file_sha256, write_table
from vlm_autodrive.builders.core.stage import Counts, RejectRecord, Stage, content_key
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.ingest.manifest import ManifestRow, read_manifest
from vlm_autodrive.builders.ingest.probe import ProbeError, StreamFacts, probe_video
from vlm_autodrive.builders.ingest.records import VIDEO_SCHEMA, VideoRecord, read_videos


@dataclass
class IngestResult:
    """What ingest produced; `rows == len(videos) + len(rejects)` always holds."""

    rows: int
    videos: list[VideoRecord]
    rejects: list[RejectRecord]
    skipped: bool  # True when a finished ingest with the same inputs was reused


def run_ingest(
    manifest: Path,
    build_dir: Path,
    taxonomy: Taxonomy,
    workers: int = 1,
    progress: bool = True,
    hash_videos: bool = False,
) -> IngestResult:
    """Validate and probe every manifest row; write the stage's files under `build_dir`.

    The stage is redone when the manifest, the taxonomy or any video file (its size or
    modification time; its bytes with `hash_videos`) changed since the last run."""
    require_file(manifest, "a manifest")
    stage = Stage(build_dir, "ingest")
    rows, rejects, files, key = _read_and_key(manifest, taxonomy, hash_videos)
    if stage.finished(key) is not None:
        videos = read_videos(stage.dir / "videos.parquet")
        rejects = stage.read_rejects()
        return IngestResult(len(videos) + len(rejects), videos, rejects, skipped=True)

    n_rows = len(rows) + len(rejects)
    videos = _records(manifest, rows, rejects, files, _probe_all(rows, workers, progress))
    write_table(videos, VIDEO_SCHEMA, stage.dir / "videos.parquet")
    rejects_rel = stage.write_rejects(rejects)
    stage.commit(key, ["ingest/videos.parquet", rejects_rel], {"rows": n_rows})
    return IngestResult(n_rows, videos, rejects, skipped=False)


def _read_and_key(manifest: Path, taxonomy: Taxonomy, hash_videos: bool):
    """The manifest's rows and rejects, each video file's state, and the stage key."""
    rows, rejects = read_manifest(manifest, taxonomy.names, taxonomy.normal)
    files = {r.entry.video_id: _file_state(r.entry.path, hash_videos) for r in rows}
    key = content_key(
        {
            "manifest_sha256": file_sha256(manifest),
            "labels": taxonomy.names,
            "normal": taxonomy.normal,  # the event-time checks depend on it
            "files": files,
        }
    )
    return rows, rejects, files, key


def _records(manifest, rows, rejects, files, probed) -> list[VideoRecord]:
    """The video records of the probed rows (`probed`: (row, facts or ProbeError)); a
    row that does not probe, or whose event lies outside its video, joins `rejects`.
    Checks `manifest rows = videos + rejects`."""
    n_rows = len(rows) + len(rejects)
    videos: list[VideoRecord] = []
    for row, facts in probed:
        if isinstance(facts, ProbeError):
            rejects.append(_reject(manifest, row, str(facts)))
            continue
        entry = row.entry.model_dump()
        fingerprint = _fingerprint(entry, facts.__dict__, files[entry["video_id"]])
        video = VideoRecord(**entry, **facts.__dict__, fingerprint=fingerprint)
        problem = _event_problem(video)
        if problem:
            rejects.append(_reject(manifest, row, problem))
        else:
            videos.append(video)
    videos.sort(key=lambda v: v.video_id)
    rejects.sort(key=lambda r: r.line or 0)
    Counts("manifest rows", n_rows, len(videos), rejects=len(rejects)).check()
    return videos


def _fingerprint(entry: dict, facts: dict, file_state) -> str:
    return content_key({**entry, **facts, "file": file_state})


@dataclass
class IngestPreview:
    """What ingest would record, computed without writing: the videos, how many rows it
    would reject, and the ids of videos whose file is as the last ingest probed it (their
    clips, cut again, come out byte for byte as before)."""

    videos: list[VideoRecord]
    rejects: int
    same_file: set[str]
    changed: bool  # False: the last ingest is up to date


def preview_ingest(
    manifest: Path, build_dir: Path, taxonomy: Taxonomy, workers: int = 1
) -> IngestPreview:
    """What `run_ingest` would do (the dry run's ingest): reads the manifest, probes (with
    the full decode) only the files that are new or changed since the last ingest, and
    writes nothing."""
    if not manifest.exists():
        raise FileNotFoundError(f"manifest not found: {manifest}")
    stage = Stage(build_dir, "ingest")
    rows, rejects, files, key = _read_and_key(manifest, taxonomy, False)
    table = stage.dir / "videos.parquet"
    if stage.finished(key) is not None:
        videos = read_videos(table)
        return IngestPreview(videos, len(stage.read_rejects()), {v.video_id for v in videos}, False)
    old = {v.video_id: v for v in read_videos(table)} if table.exists() else {}
    facts_fields = list(StreamFacts.__dataclass_fields__)
    known: dict[str, StreamFacts] = {}
    for r in rows:
        o = old.get(r.entry.video_id)
        if o is None or o.path != r.entry.path:
            continue
        # The old fingerprint with today's file state: equal when the file is the same.
        entry = o.model_dump(include=set(r.entry.model_dump()))
        facts = o.model_dump(include=set(facts_fields))
        if _fingerprint(entry, facts, files[o.video_id]) == o.fingerprint:
            known[o.video_id] = StreamFacts(**facts)
    new = [r for r in rows if r.entry.video_id not in known]
    probed = dict((r.entry.video_id, f) for r, f in _probe_all(new, workers, False))
    probed.update(known)
    videos = _records(manifest, rows, rejects, files, ((r, probed[r.entry.video_id]) for r in rows))
    return IngestPreview(videos, len(rejects), set(known), True)


def _file_state(path: str, with_hash: bool) -> list | None:
    """A video file's size and modification time (and sha256 when asked); None when it
    cannot be read (probing then rejects the row with the reason)."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    state = [st.st_size, st.st_mtime_ns]
    if with_hash:
        state.append(file_sha256(Path(path)))
    return state


def _reject(manifest: Path, row: ManifestRow, reason: str) -> RejectRecord:
    return RejectRecord("ingest", str(manifest), row.line, row.entry.video_id, reason)


def _event_problem(video: VideoRecord) -> str | None:
    """Why the event times do not fit the video, or None."""
    if not video.has_event:
        return None
    slack = 1.0 / video.fps  # the last frame's timestamp is one interval before the end
    if video.event_end > video.duration + slack:
        return (
            f"event at {video.event_start:g}-{video.event_end:g} s lies outside the video "
            f"({video.duration:g} s long)"
        )
    return None


def _probe_one(path: str) -> StreamFacts | ProbeError:
    try:
        return probe_video(path)
    except ProbeError as e:
        return e


def _probe_all(rows: list[ManifestRow], workers: int, progress: bool):
    paths = [r.entry.path for r in rows]
    bar = tqdm(total=len(rows), desc="probe", unit="video", disable=not progress)
    if workers <= 1 or len(rows) < 4:
        results = map(_probe_one, paths)
        for row, facts in zip(rows, results):
            bar.update()
            yield row, facts
    else:
        with worker_pool(workers) as pool:  # workers die with this process
            for row, facts in zip(rows, pool.map(_probe_one, paths, chunksize=8)):
                bar.update()
                yield row, facts
    bar.close()
