"""Chunk stage: source videos -> clips under `clips/` and the clip table.

Reads `ingest/videos.parquet`; writes `clips/<video_id>/<clip_id>.mp4`,
`chunk/clips.parquet` (one `ClipRecord` per clip), `chunk/rejects.jsonl` and
`chunk/summary.json`. Videos are cut in parallel, one process per video. Each finished
video leaves `chunk/parts/<video_id>.json`; a re-run skips those, so a killed job
resumes where it stopped and a finished one does no work.
"""

from __future__ import annotations

import shutil
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from .cutting import CutError, cut_copy, cut_reencode
from .recipe import ChunkConfig
from .records import CLIP_SCHEMA, ClipRecord, RejectRecord, VideoRecord, read_videos, write_table
from .stagefiles import read_json, write_json, write_rejects
from .taxonomy import Taxonomy
from .windows import Event, Window, event_offset, label_window, place_window, plan_windows

# x264 frame threads per process: a few more than the cores each busy process gets, so
# the encoder stays busy while the process decodes and muxes (measured on 2 cores, 2
# processes: 3 threads each cut 1280x720 clips ~20% faster than 1). A constant, not
# derived from --workers or the videos left: x264's output depends on its thread count,
# and clip bytes must not depend on the worker count, the cores or a resume.
X264_THREADS = 3


class ChunkSettingsChanged(Exception):
    """The build folder holds clips cut with other settings; re-cut with force."""


@dataclass
class VideoOutcome:
    """One video's result: its clips, or the reason it was rejected, plus window counts."""

    video_id: str
    clips: list[ClipRecord] = field(default_factory=list)
    planned: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    reject: str | None = None


@dataclass
class ChunkResult:
    """What the chunk stage produced, with its conserved counts."""

    videos: int
    clips: list[ClipRecord]
    rejects: list[RejectRecord]
    planned: int
    dropped: dict[str, int]
    cut_now: int  # videos cut in this run (the rest were already done)

    @property
    def by_label(self) -> dict[str, int]:
        return dict(sorted(Counter(c.label for c in self.clips).items()))


def run_chunk(
    build_dir: Path,
    config: ChunkConfig,
    taxonomy: Taxonomy,
    workers: int = 1,
    force: bool = False,
    progress: bool = True,
) -> ChunkResult:
    """Cut every ingested video into labelled clips; resumable, parallel across videos."""
    out = build_dir / "chunk"
    parts = out / "parts"
    settings = {"chunk": config.model_dump(), "labels": taxonomy.names}
    settings["chunk"].pop("workers")
    if (out / "settings.json").exists() and read_json(out / "settings.json") != settings:
        if not force:
            raise ChunkSettingsChanged(
                f"{out}: clips here were cut with other settings "
                f"({read_json(out / 'settings.json')['chunk']}); re-run with --force to re-cut"
            )
        shutil.rmtree(out)
        shutil.rmtree(build_dir / "clips", ignore_errors=True)
    parts.mkdir(parents=True, exist_ok=True)
    write_json(out / "settings.json", settings)
    _remove_stale_tmp(build_dir / "clips")

    videos = read_videos(build_dir / "ingest" / "videos.parquet")
    todo = [v for v in videos if not (parts / f"{v.video_id}.json").exists()]
    jobs = [(v, config, taxonomy.normal, str(build_dir), X264_THREADS) for v in todo]
    bar = tqdm(
        total=len(videos),
        initial=len(videos) - len(todo),
        desc="chunk",
        unit="video",
        disable=not progress,
    )
    for outcome in _run_parallel(jobs, workers):
        write_json(parts / f"{outcome.video_id}.json", asdict(outcome))
        bar.update()
    bar.close()
    return _merge(build_dir, videos, len(todo))


def _run_parallel(jobs: list[tuple], workers: int):
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield chunk_video(*job)
        return
    with ProcessPoolExecutor(workers) as pool:
        # Keep a bounded queue in flight so a kill loses at most `workers` videos.
        it = iter(jobs)
        running = {pool.submit(chunk_video, *j) for j in _take(it, 2 * workers)}
        while running:
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                yield f.result()
            running |= {pool.submit(chunk_video, *j) for j in _take(it, len(finished))}


def _take(it, n):
    for _ in range(n):
        try:
            yield next(it)
        except StopIteration:
            return


def chunk_video(
    video: VideoRecord, config: ChunkConfig, normal: str, build_dir: str, threads: int = 1
) -> VideoOutcome:
    """Plan, cut and label the clips of one video (runs in a worker process)."""
    event = (
        Event(video.label, video.event_start, video.event_time, video.event_end)
        if video.has_event
        else None
    )
    windows = plan_windows(
        video.duration,
        config.window,
        config.stride,
        event,
        config.margin,
        config.ensure_event_clip,
    )
    outcome = VideoOutcome(video.video_id, planned=len(windows))
    if not windows:
        outcome.reject = f"shorter ({video.duration:g} s) than one window ({config.window:g} s)"
        return outcome
    # Labels come from the times actually cut (copy mode starts at an earlier keyframe),
    # so every window is cut first and the rule then keeps or drops it.
    root = Path(build_dir)
    rel = [Path("clips") / video.video_id / f"{clip_id(video.video_id, w)}.mp4" for w in windows]
    try:
        if config.mode == "copy":
            cut = cut_copy(video.path, windows, [root / r for r in rel])
        else:
            cut = cut_reencode(
                video.path, windows, [root / r for r in rel], config.crf, config.preset, threads
            )
    except CutError as e:
        for r in rel:
            (root / r).unlink(missing_ok=True)
        outcome.reject = str(e)
        return outcome
    dropped: Counter[str] = Counter()
    for clip, r in zip(cut, rel):
        actual = Window(round(clip.start, 6), round(clip.end, 6))
        label = label_window(
            actual, event, normal, config.margin, config.ambiguous, config.post_event
        )
        if label is None:
            where = place_window(actual, event, config.margin)
            dropped["post_event" if where == "after" else "ambiguous"] += 1
            (root / r).unlink()
            continue
        outcome.clips.append(
            ClipRecord(
                clip_id=clip_id(video.video_id, clip.window),
                video_id=video.video_id,
                path=r.as_posix(),
                planned_start=clip.window.start,
                planned_end=clip.window.end,
                start=actual.start,
                end=actual.end,
                fps=video.fps,
                frames=clip.frames,
                width=video.width,
                height=video.height,
                size_bytes=(root / r).stat().st_size,
                label=label,
                event_offset=event_offset(actual, event),
                cut_mode=config.mode,
            )
        )
    outcome.dropped = dict(dropped)
    return outcome


def clip_id(video_id: str, window: Window) -> str:
    """Stable clip id: the video id and the planned start in milliseconds."""
    return f"{video_id}_{round(window.start * 1000):07d}"


def _remove_stale_tmp(clips_dir: Path) -> None:
    """Temporary clip files left by a killed run (never under a final name)."""
    if clips_dir.exists():
        for tmp in clips_dir.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def _merge(build_dir: Path, videos: list[VideoRecord], cut_now: int) -> ChunkResult:
    out = build_dir / "chunk"
    clips: list[ClipRecord] = []
    rejects: list[RejectRecord] = []
    planned = failed_windows = 0
    dropped: Counter[str] = Counter()
    for v in videos:
        o = read_json(out / "parts" / f"{v.video_id}.json")
        planned += o["planned"]
        dropped.update(o["dropped"])
        clips.extend(ClipRecord(**c) for c in o["clips"])
        if o["reject"]:
            rejects.append(RejectRecord("chunk", v.path, None, v.video_id, o["reject"]))
            failed_windows += o["planned"]
    # Conservation: every planned window is a clip or a counted drop (or its video failed).
    assert planned == len(clips) + sum(dropped.values()) + failed_windows, "windows lost"
    write_table(clips, CLIP_SCHEMA, out / "clips.parquet")
    write_rejects(out / "rejects.jsonl", rejects)
    result = ChunkResult(len(videos), clips, rejects, planned, dict(dropped), cut_now)
    write_json(
        out / "summary.json",
        {
            "videos": len(videos),
            "videos_rejected": len(rejects),
            "windows_planned": planned,
            "clips": len(clips),
            "dropped": dict(dropped),
            "windows_of_rejected_videos": failed_windows,
            "clips_by_label": result.by_label,
        },
    )
    return result
