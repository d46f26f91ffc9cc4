"""Ingest stage: manifest -> validated, probed video records (`ingest/videos.parquet`).

Writes `ingest/videos.parquet` (one `VideoRecord` per usable video, with its file's
sha256 and, with `ingest.near_duplicates: group`, its perceptual signature),
`ingest/rejects.jsonl` (one `RejectRecord` per unusable row or file, duplicates
included), `ingest/source_hashes.json` (the hash and signature memo, `sources.py`) and
`ingest/stamp.json` (the stage base, `core/stage.py`). Re-running with the same manifest,
taxonomy and file bytes does no work; files of recorded videos that are missing or can
no longer be read stop it before any write.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from vlm_autodrive.builders.core.children import worker_pool
from vlm_autodrive.builders.core.errors import InputError, require_file
from vlm_autodrive.builders.core.files import file_sha256, write_table
from vlm_autodrive.builders.core.stage import Counts, RejectRecord, Stage, content_key
from vlm_autodrive.builders.core.taxonomy import Taxonomy, record_taxonomy
from vlm_autodrive.builders.ingest.manifest import ManifestRow, read_manifest
from vlm_autodrive.builders.ingest.probe import ProbeError, StreamFacts, probe_video
from vlm_autodrive.builders.ingest.records import VIDEO_SCHEMA, VideoRecord, read_videos
from vlm_autodrive.builders.ingest.sources import (
    NEAR_DUPLICATES,
    hash_sources,
    read_memo,
    refuse_unavailable,
    sign_sources,
    source_problem,
    split_duplicates,
    write_memo,
)


@dataclass
class IngestResult:
    """What ingest produced; `rows == len(videos) + len(rejects)` always holds."""

    rows: int
    videos: list[VideoRecord]
    rejects: list[RejectRecord]
    skipped: bool  # True when a finished ingest with the same inputs was reused


PRUNE_HINT = "run again with --prune-missing"


def run_ingest(
    manifest: Path,
    build_dir: Path,
    taxonomy: Taxonomy,
    workers: int = 1,
    progress: bool = True,
    *,
    prune_missing: bool = False,
    duplicates: str = "reject",
    near_duplicates: str = "group",
    declared: str = "",
) -> IngestResult:
    """Validate, hash and probe every manifest row; write the stage's files under `build_dir`.

    The stage is redone when the manifest, the taxonomy, `duplicates` or any video file's
    bytes changed since the last run (files are hashed once per size and modification
    time, `sources.py`). A video file that is missing, empty, not a regular file or no
    longer probes (damaged, not a video any more) stops the run before anything is
    written (MissingSources, exit 2) when the last ingest had its video, unless
    `prune_missing`: then its row is rejected and chunk deletes its clips. A path that is
    not a regular file (a FIFO, directory, socket, device) is never opened: its row is
    a reject naming its line. `duplicates`
    ("reject" or "group"): what to do with byte-identical files under different ids
    (`sources.split_duplicates`). `near_duplicates` ("group" or "off"): "group" records
    each video's perceptual signature (`sources.sign_sources`), for the assignment to
    keep re-encoded or resized copies on one side."""
    require_file(manifest, "a manifest")
    _check_near(near_duplicates)
    stage = Stage(build_dir, "ingest")
    rows, rejects = read_manifest(manifest, taxonomy.names, taxonomy.normal)
    known = _known(stage)
    rows = _check_sources(manifest, rows, rejects, known, prune_missing)
    files, memo = hash_sources(rows, read_memo(stage.dir), workers)
    key = _key(manifest, taxonomy, files, duplicates, near_duplicates, declared)
    if stage.finished(key) is not None:
        record_taxonomy(build_dir, taxonomy)  # what later commands given none use
        write_memo(stage.dir, memo)  # files touched but not changed: not hashed again
        videos = read_videos(stage.dir / "videos.parquet")
        rejects = stage.read_rejects()
        return IngestResult(len(videos) + len(rejects), videos, rejects, skipped=True)

    n_rows = len(rows) + len(rejects)
    rows, dup_rejects = split_duplicates(manifest, rows, files, duplicates)
    rejects += dup_rejects
    probed = list(_probe_all(rows, workers, progress))
    if not prune_missing:  # before anything is written
        _refuse_unreadable(manifest, probed, known, n_rows)
    record_taxonomy(build_dir, taxonomy)
    videos = _records(manifest, rows, rejects, files, probed)
    _sign(videos, near_duplicates, memo, workers, progress)
    write_table(videos, VIDEO_SCHEMA, stage.dir / "videos.parquet")
    rejects_rel = stage.write_rejects(rejects)
    write_memo(stage.dir, memo)
    stage.commit(key, ["ingest/videos.parquet", rejects_rel], {"rows": n_rows})
    return IngestResult(n_rows, videos, rejects, skipped=False)


def _check_near(near_duplicates: str) -> None:
    if near_duplicates not in NEAR_DUPLICATES:
        wanted = f"{near_duplicates!r} is not one of {NEAR_DUPLICATES}"
        raise InputError("recipe", wanted, "ingest.near_duplicates")


def _sign(videos: list[VideoRecord], near_duplicates: str, memo, workers, progress) -> None:
    """Set each video's perceptual signature ("group"; memoised in `memo`)."""
    if near_duplicates != "group":
        return
    signatures = sign_sources([v.path for v in videos], memo, workers, progress)
    for v in videos:
        v.perceptual_signature = signatures[v.path]


def _key(
    manifest: Path, taxonomy: Taxonomy, files: dict, duplicates: str, near: str, declared: str
) -> str:
    """The stage key: the manifest's bytes, the label set, every file's size and sha256
    (not its path's modification time: a touched file is the same file), the
    duplicates settings, and `declared` (the pipeline's key of the stage's declared
    inputs: its code, settings and taxonomy; builders/pipeline.py)."""
    return content_key(
        {
            "declared": declared,
            "manifest_sha256": file_sha256(manifest),
            "labels": taxonomy.names,
            "normal": taxonomy.normal,  # the event-time checks depend on it
            "files": files,
            "duplicates": duplicates,
            "near_duplicates": near,
        }
    )


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
        sha = files[entry["video_id"]][1]
        video = VideoRecord(**entry, **facts.__dict__, fingerprint=fingerprint, sha256=sha)
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
    """What a video's clips are made from: its manifest fields, probed facts and file
    state; not where the file lies (a moved project re-cuts nothing)."""
    fields = {k: v for k, v in entry.items() if k != "path"}
    return content_key({**fields, **facts, "file": file_state})


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
    manifest: Path,
    build_dir: Path,
    taxonomy: Taxonomy,
    workers: int = 1,
    *,
    prune_missing: bool = False,
    duplicates: str = "reject",
    near_duplicates: str = "group",
    declared: str = "",
) -> IngestPreview:
    """What `run_ingest` would do (the dry run's ingest): reads the manifest, hashes the
    files the last ingest did not (nothing is recorded), probes (with the full decode)
    only the files that are new or changed since the last ingest, makes the perceptual
    signatures the memo lacks (not recorded either), and writes nothing.
    Missing files stop it as they stop the run (MissingSources), unless `prune_missing`."""
    if not manifest.exists():
        raise FileNotFoundError(f"manifest not found: {manifest}")
    _check_near(near_duplicates)
    stage = Stage(build_dir, "ingest")
    rows, rejects = read_manifest(manifest, taxonomy.names, taxonomy.normal)
    recorded = _known(stage)
    rows = _check_sources(manifest, rows, rejects, recorded, prune_missing)
    files, memo = hash_sources(rows, read_memo(stage.dir), workers)  # memo not written
    key = _key(manifest, taxonomy, files, duplicates, near_duplicates, declared)
    table = stage.dir / "videos.parquet"
    if stage.finished(key) is not None:
        videos = read_videos(table)
        return IngestPreview(videos, len(stage.read_rejects()), {v.video_id for v in videos}, False)
    rows, dup_rejects = split_duplicates(manifest, rows, files, duplicates)
    rejects += dup_rejects
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
    fresh = list(_probe_all(new, workers, False))
    if not prune_missing:
        _refuse_unreadable(manifest, fresh, recorded, len(rows) + len(rejects))
    probed = {r.entry.video_id: f for r, f in fresh}
    probed.update(known)
    videos = _records(manifest, rows, rejects, files, ((r, probed[r.entry.video_id]) for r in rows))
    _sign(videos, near_duplicates, memo, workers, False)
    return IngestPreview(videos, len(rejects), set(known), True)


def _known(stage: Stage) -> set[str]:
    """The ids of the videos the last ingest recorded (losing one deletes its clips)."""
    table = stage.dir / "videos.parquet"
    if not table.exists():
        return set()
    import pyarrow.parquet as pq

    return set(pq.read_table(table, columns=["video_id"])["video_id"].to_pylist())


def _check_sources(
    manifest: Path,
    rows: list[ManifestRow],
    rejects: list[RejectRecord],
    known: set[str],
    prune_missing: bool,
) -> list[ManifestRow]:
    """The rows whose path may be opened: a path that is not a regular file (a FIFO
    would block its reader for ever; a directory, socket, device) joins `rejects`
    naming its line, found by its stat alone. Before that, unless `prune_missing`, the
    files of videos the last ingest recorded (`known`) that are missing, empty or not
    regular files stop the run (MissingSources, exit 2): dropping them would delete
    their clips. (A row whose file was never usable is an ordinary reject.)"""
    problems = {r.entry.video_id: source_problem(r.entry.path) for r in rows}
    if not prune_missing:
        lost = {
            r.entry.path: problems[r.entry.video_id]
            for r in rows
            if r.entry.video_id in known and problems[r.entry.video_id]
        }
        refuse_unavailable(manifest, lost, len(rows), PRUNE_HINT)
    kept = []
    for r in rows:
        why = problems[r.entry.video_id]
        if why and why.startswith("not a regular file"):
            rejects.append(_reject(manifest, r, f"path: {r.entry.path}: {why}"))
        else:
            kept.append(r)
    return kept


def _refuse_unreadable(manifest: Path, probed, known: set[str], total: int) -> None:
    """Stop (MissingSources, exit 2) when a video the last ingest recorded no longer
    probes (damaged, truncated, not a video any more): as a missing file, dropping it
    would delete its clips. `probed`: (row, facts or ProbeError) pairs."""
    lost = {
        row.entry.path: str(facts)
        for row, facts in probed
        if isinstance(facts, ProbeError) and row.entry.video_id in known
    }
    refuse_unavailable(manifest, lost, total, PRUNE_HINT)


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
