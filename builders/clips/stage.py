"""Chunk stage: source videos -> clips under `clips/` and the clip table.

Reads `ingest/videos.parquet`; writes `clips/<video_id>/<clip_id>.mp4`,
`chunk/clips.parquet` (one `ClipRecord` per clip), `chunk/rejects.jsonl`,
`chunk/summary.json` and `chunk/stamp.json` (the stage base, `core/stage.py`). Videos are
cut in parallel, one process per video, or one Ray task per video with `engine: ray`
(`ray_engine.py`: the same `chunk_video`, the same clips). Which windows a video gets
and how each is cut is `plan.py`; labels come from the times actually cut, and an event
video whose event no clip holds as cut is rejected with the reason, never dropped
silently. Each finished video leaves
`chunk/parts/<video_id>.json` (its clips, and each clip file's size, modification time and
sha256); a re-run skips those whose clips are intact, so a killed job resumes where it
stopped, a finished one does no work, and a missing, empty or changed clip is cut again.
A video to cut whose source file is missing, empty or not a regular file stops the stage
before anything is deleted.
"""

from __future__ import annotations

import shutil
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from vlm_autodrive.builders.clips.cutting import CutError, cut_copy, index_copy
from vlm_autodrive.builders.clips.parts import (
    clip_files,
    clips_intact,
    read_memo,
    read_part,
    remember,
    remove_gone,
    write_memo,
)
from vlm_autodrive.builders.clips.plan import (
    CutPlan,
    PlannedCut,
    frame_rate,
    label_cuts,
    plan_cuts,
)
from vlm_autodrive.builders.clips.records import CLIP_SCHEMA, ClipRecord
from vlm_autodrive.builders.clips.reencode import cut_reencode
from vlm_autodrive.builders.clips.smart import cut_smart
from vlm_autodrive.builders.clips.windows import (
    Event,
    Window,
    event_offset,
)
from vlm_autodrive.builders.core.children import worker_pool
from vlm_autodrive.builders.core.files import file_sha256, read_json, write_json, write_table
from vlm_autodrive.builders.core.ray_cluster import RaySettings
from vlm_autodrive.builders.core.sections import ChunkConfig
from vlm_autodrive.builders.core.stage import (
    Counts,
    RejectRecord,
    Stage,
    content_key,
    require_stage_input,
)
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.ingest.records import VideoRecord, read_videos
from vlm_autodrive.builders.ingest.sources import refuse_unavailable, unavailable_sources

INGEST_TABLE = "ingest/videos.parquet"


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
    has_event: bool = False
    event_clips: int = 0  # clips that hold the event, as cut
    reencoded_stretched: int = 0  # copy mode: re-encoded past max_copy_stretch
    smart_fallback: dict[str, int] = field(default_factory=dict)  # smart mode: re-encoded, why
    whole: bool = False  # shorter than a window: one clip of the whole video
    files: dict[str, list] = field(default_factory=dict)  # clip -> [size, mtime_ns, sha256]


@dataclass
class ChunkResult:
    """What the chunk stage produced, with its conserved counts."""

    videos: int
    clips: list[ClipRecord]
    rejects: list[RejectRecord]
    planned: int
    dropped: dict[str, int]
    cut_now: int  # videos cut in this run (the rest were already done)
    summary: dict = field(default_factory=dict)  # as in chunk/summary.json
    recut: int = 0  # of cut_now: videos cut before whose inputs changed or clips were damaged
    removed: int = 0  # videos that left the manifest: their clips and rows deleted

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
    engine: str = "local",
    ray: RaySettings | None = None,
    declared: str = "",
) -> ChunkResult:
    """Cut every ingested video into labelled clips; resumable, parallel across videos.

    `engine` "local" cuts in `workers` processes here; "ray" in Ray tasks on the cluster
    `ray` names (at most `config.workers` at once, 0: as the cluster allows). Both give
    the same clips, parts and clip table: the engine is not a chunk setting.
    """
    require_stage_input(build_dir, INGEST_TABLE)  # before anything is written
    out = build_dir / "chunk"
    parts = out / "parts"
    settings, _ = checked_settings(out, config, taxonomy, force)
    videos = read_videos(build_dir / INGEST_TABLE)
    # A video is cut again exactly when what its clips are made from changed: its
    # fingerprint (manifest fields, probe facts, file bytes) or the settings; or when a
    # clip file it wrote is missing, empty or not the bytes recorded (`clip_files`).
    keys = {v.video_id: video_key(v, settings, declared) for v in videos}
    todo, changed = [], 0
    memo = read_memo(build_dir)  # clip files' sha256 by size and modification time
    for v in videos:
        part = parts / f"{v.video_id}.json"
        if part.exists():
            record = read_part(part)
            if record.get("key") == keys[v.video_id] and clips_intact(build_dir, record, memo):
                continue
            changed += 1
        todo.append(v)
    # Sources that went missing (an unmounted disk), or became empty or no regular file,
    # stop the stage before it deletes anything: their clips are kept until ingest
    # drops them on purpose.
    refuse_unavailable(
        build_dir / INGEST_TABLE,
        unavailable_sources([v.path for v in todo]),
        len(videos),
        "run `autodrive ingest MANIFEST --build BUILD --prune-missing` (or `autodrive build "
        "RECIPE --prune-missing`)",
    )
    parts.mkdir(parents=True, exist_ok=True)
    write_json(out / "settings.json", settings)
    _remove_stale_tmp(build_dir / "clips")
    for v in todo:
        (parts / f"{v.video_id}.json").unlink(missing_ok=True)
        shutil.rmtree(build_dir / "clips" / v.video_id, ignore_errors=True)
    removed = remove_gone(build_dir, parts, {v.video_id for v in videos})
    jobs = [(v, config, taxonomy.normal, str(build_dir)) for v in todo]
    bar = tqdm(
        total=len(videos),
        initial=len(videos) - len(todo),
        desc="chunk",
        unit="video",
        disable=not progress,
    )
    if engine == "ray":
        from vlm_autodrive.builders.clips.ray_engine import run_on_ray

        outcomes = run_on_ray(jobs, ray or RaySettings(), config.workers, build_dir)
    else:
        outcomes = _run_parallel(jobs, workers)
    sources = {v.video_id: v.path for v in videos}
    for outcome in outcomes:
        # A source gone mid-run (an unmounted disk) is a reject of this run only: no key,
        # so the next run cuts it again (or stops, naming it, while it is still missing).
        gone = outcome.reject is not None and not Path(sources[outcome.video_id]).exists()
        record = {"key": None if gone else keys[outcome.video_id], **asdict(outcome)}
        write_json(parts / f"{outcome.video_id}.json", record)
        remember(build_dir, record, memo)
        bar.update()
    bar.close()
    write_memo(build_dir, memo)
    result = _merge(build_dir, videos, len(todo), file_sha256(build_dir / INGEST_TABLE))
    result.recut, result.removed = changed, removed
    return result


def video_key(video: VideoRecord, settings: dict, declared: str) -> str:
    """The key of one video's clips: the video's fingerprint, the chunk settings and
    `declared` (the pipeline's key of the stage's declared inputs: the chunk code, its
    settings and the taxonomy; builders/pipeline.py). `declared` is "" for callers
    outside the pipeline, which then key on the fingerprint and settings alone."""
    return content_key({"video": video.fingerprint, "settings": settings, "declared": declared})


def chunk_settings(config: ChunkConfig, taxonomy: Taxonomy) -> dict:
    """What every clip is cut with (`chunk/settings.json`): the settings but the workers,
    and the labels."""
    settings = {"chunk": config.model_dump(), "labels": taxonomy.names}
    settings["chunk"].pop("workers")
    settings["chunk"].pop("decode")  # the same pictures from either decoder
    return settings


def checked_settings(
    out: Path, config: ChunkConfig, taxonomy: Taxonomy, force: bool
) -> tuple[dict, dict]:
    """(the chunk settings of `config`, those the clips in `out` were cut with: the same
    for a new folder); ChunkSettingsChanged when they differ, unless `force` (the run and
    its dry run refuse alike)."""
    settings = chunk_settings(config, taxonomy)
    old = read_json(out / "settings.json") if (out / "settings.json").exists() else settings
    # A setting the toolkit added after these clips were cut (`encoder_threads`) is no
    # edit of the user's: it is not refused. Clips it changes are re-cut by their keys,
    # which hold the code and the settings.
    added = {k: v for k, v in settings["chunk"].items() if k not in old.get("chunk", {})}
    old = {**old, "chunk": {**old.get("chunk", {}), **added}}
    if old != settings and not force:
        if _only_default_mode_changed(old, settings, config):
            raise ChunkSettingsChanged(
                f"{out}: clips here were cut with chunk.mode 'reencode', the default until "
                "now; the default is now 'smart' (frame exact like reencode, near stream-copy "
                "cost on H.264 sources). To keep these clips, set `chunk.mode: reencode` in "
                "the recipe (or pass --mode reencode); to re-cut every video as smart, re-run "
                "with --force"
            )
        raise ChunkSettingsChanged(
            f"{out}: clips here were cut with other settings "
            f"({_differences(old, settings)}); re-run with --force to re-cut every video"
        )
    return settings, old


def _only_default_mode_changed(old: dict, new: dict, config: ChunkConfig) -> bool:
    """Whether the clips differ from `config` only in mode reencode -> smart, and smart
    comes from the default (the recipe and command line leave `mode` unset): a build cut
    before smart became the default."""
    before = {**old, "chunk": {**old.get("chunk", {}), "mode": "smart"}}
    return (
        "mode" not in config.model_fields_set
        and old.get("chunk", {}).get("mode") == "reencode"
        and new["chunk"]["mode"] == "smart"
        and before == new
    )


def _differences(old: dict, new: dict) -> str:
    """`key: old -> new` for every chunk setting (and the label list) that differs."""
    pairs = [(f"chunk.{k}", old.get("chunk", {}).get(k), v) for k, v in new["chunk"].items()]
    diffs = [f"{k}: {a!r} -> {b!r}" for k, a, b in pairs if a != b]
    if old.get("labels") != new["labels"]:
        diffs.append(_label_difference(old.get("labels") or [], new["labels"]))
    return ", ".join(diffs) or "unknown"


def _label_difference(old: list[str], new: list[str]) -> str:
    """What changed in the taxonomy's label list (a new class, usually), then both lists."""
    added = [x for x in new if x not in old]
    removed = [x for x in old if x not in new]
    what = [f"added {added}"] if added else []
    what += [f"removed {removed}"] if removed else []
    what = what or ["the same classes in another order"]
    return f"labels (the taxonomy's classes): {'; '.join(what)} ({old} -> {new})"


def _run_parallel(jobs: list[tuple], workers: int):
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield chunk_video(*job)
        return
    with worker_pool(workers) as pool:  # workers die with this process
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
    video: VideoRecord, config: ChunkConfig, normal: str, build_dir: str
) -> VideoOutcome:
    """Plan, cut and label the clips of one video (runs in a worker process)."""
    event = None
    if video.has_event:  # the moment, at most the video's end (ingest allows a frame more)
        time = min(video.event_time, video.duration)
        event = Event(video.label, min(video.event_start, time), time, video.event_end)
    outcome = VideoOutcome(video.video_id, has_event=event is not None)
    try:
        index = index_copy(video.path) if config.mode in ("copy", "smart") else None
        timing = (video.max_gap, video.missing)
        plan = plan_cuts(video.duration, video.fps, video.frames, event, config, index, timing)
    except CutError as e:
        index, plan = None, CutPlan(reject=str(e))
    outcome.planned = plan.windows
    outcome.whole = plan.whole
    if plan.reject:
        outcome.reject = plan.reject
        return outcome
    root = Path(build_dir)
    rel = {
        c.window: Path("clips") / video.video_id / f"{clip_id(video.video_id, c.window)}.mp4"
        for c in plan.cuts
    }
    try:
        cut, outcome.smart_fallback = _cut_all(video, plan.cuts, root, rel, config, index)
    except CutError as e:
        for r in rel.values():
            (root / r).unlink(missing_ok=True)
        outcome.reject = str(e)
        return outcome
    # Labels come from the times actually cut (copy mode starts at an earlier keyframe),
    # so every window is cut first and the rule then keeps or drops it.
    times = [Window(round(c.start, 6), round(c.end, 6)) for c, _ in cut]
    labelled = label_cuts(times, event, video, config, normal, Counter(plan.dropped))
    kept = {i: lab for i, lab in labelled.kept}
    for i, (clip, _) in enumerate(cut):
        if i not in kept:
            (root / rel[clip.window]).unlink(missing_ok=True)
    if labelled.reject:
        for r in rel.values():
            (root / r).unlink(missing_ok=True)
        return VideoOutcome(
            video.video_id,
            planned=outcome.planned,
            has_event=True,
            whole=plan.whole,
            reject=labelled.reject,
        )
    for i, (clip, mode) in enumerate(cut):
        if i not in kept:
            continue
        r, actual = rel[clip.window], times[i]
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
                width=clip.width or video.width,
                height=clip.height or video.height,
                size_bytes=(root / r).stat().st_size,
                label=kept[i],
                event_offset=event_offset(actual, event),
                cut_mode=mode,
                rotation=clip.rotation,
                picture=clip.picture,
                frames_duplicated=clip.duplicated,
                frames_dropped=clip.dropped,
            )
        )
    outcome.files = clip_files(root, [c.path for c in outcome.clips])
    outcome.event_clips = labelled.event_clips
    outcome.dropped = dict(labelled.dropped)
    outcome.reencoded_stretched = plan.reencoded_stretched
    return outcome


def _cut_all(source: VideoRecord, cuts: list[PlannedCut], root, rel, config, index):
    """Cut every planned window of `source` by its mode: [(CutClip, mode as cut)] sorted
    by planned start, and the windows smart mode re-encoded, by reason."""
    done = []
    fallback: Counter[str] = Counter()
    threads = config.encoder_threads
    for mode in ("copy", "reencode", "smart"):
        wins = [c.window for c in cuts if c.mode == mode]
        if not wins:
            continue
        paths = [root / rel[w] for w in wins]
        if mode == "smart":
            rate = frame_rate(source.fps)
            cut, why = cut_smart(
                source, wins, paths, index, rate, config.crf, config.preset, threads
            )
            done += cut
            fallback.update(why)
            continue
        if mode == "copy":
            clips = cut_copy(source.path, wins, paths, index, source.rotation)
        else:
            clips = cut_reencode(
                source.path,
                wins,
                paths,
                config.crf,
                config.preset,
                threads,
                rotation=source.rotation,
                decode=config.decode,
                rate=frame_rate(source.fps),
            )
        done += [(c, mode) for c in clips]
    return sorted(done, key=lambda x: x[0].window.start), dict(fallback)


def clip_id(video_id: str, window: Window) -> str:
    """Stable clip id: the video id and the planned start in milliseconds."""
    return f"{video_id}_{round(window.start * 1000):07d}"


def _remove_stale_tmp(clips_dir: Path) -> None:
    """Temporary clip files left by a killed run (never under a final name)."""
    if clips_dir.exists():
        for tmp in clips_dir.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def _merge(
    build_dir: Path, videos: list[VideoRecord], cut_now: int, ingest_sha: str
) -> ChunkResult:
    out = build_dir / "chunk"
    clips: list[ClipRecord] = []
    rejects: list[RejectRecord] = []
    planned = failed_windows = stretched = whole = 0
    dropped: Counter[str] = Counter()
    smart_fallback: Counter[str] = Counter()
    events: Counter[str] = Counter()
    for v in videos:
        o = read_json(out / "parts" / f"{v.video_id}.json")
        planned += o["planned"]
        dropped.update(o["dropped"])
        clips.extend(ClipRecord(**c) for c in o["clips"])
        stretched += o.get("reencoded_stretched", 0)
        smart_fallback.update(o.get("smart_fallback") or {})
        whole += bool(o.get("whole")) and not o["reject"]
        if o["reject"]:
            rejects.append(RejectRecord("chunk", v.path, None, v.video_id, o["reject"]))
            failed_windows += o["planned"]
        if v.has_event:
            kind = "rejected" if o["reject"] else "event clip" if o.get("event_clips") else ""
            events[kind or "no event clip (ensure_event_clip: false)"] += 1
    # Conservation: every planned window is a clip, a counted drop, or a window of a
    # rejected video; every event video has its event clip or is a named reject.
    Counts("windows", planned, len(clips), rejects=failed_windows, dropped=dict(dropped)).check()
    no_clip = {k: n for k, n in events.items() if k.startswith("no event clip")}
    event_videos = sum(1 for v in videos if v.has_event)
    Counts("event videos", event_videos, events["event clip"], events["rejected"], no_clip).check()
    stage = Stage(build_dir, "chunk")
    write_table(clips, CLIP_SCHEMA, out / "clips.parquet")
    rejects_rel = stage.write_rejects(rejects)
    summary = {
        "videos": len(videos),
        "videos_rejected": len(rejects),
        "videos_whole": whole,
        "windows_planned": planned,
        "clips": len(clips),
        "dropped": dict(dropped),
        "windows_of_rejected_videos": failed_windows,
        "clips_by_label": dict(sorted(Counter(c.label for c in clips).items())),
        "event_videos": {"total": event_videos, **dict(sorted(events.items()))},
        "copy_stretch": {
            "reencoded": stretched,
            "not_cut": dropped.get("copy_stretch", 0),
        },
        "smart_fallback": dict(sorted(smart_fallback.items())),
    }
    write_json(out / "summary.json", summary)
    stage.commit(
        content_key({"settings": read_json(out / "settings.json"), "videos": ingest_sha}),
        ["chunk/clips.parquet", rejects_rel],
        summary,
        inputs={INGEST_TABLE: ingest_sha},
    )
    return ChunkResult(len(videos), clips, rejects, planned, dict(dropped), cut_now, summary)
