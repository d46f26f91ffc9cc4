"""What the chunk stage would do, computed without cutting or writing (the dry run's chunk).

In: the build folder, the video records ingest would write (`IngestPreview`), the chunk
settings. Out: a `ChunkPreview`: every clip the stage would leave, with its label and,
where it is known before cutting, the content hash its file will have.

The plan is the chunk stage's own (`plan_cuts`, then `label_cuts` on the times each cut
will cover, which `plan.py` knows before cutting), so labels, drops and rejects are the
real run's. A video whose part is up to date keeps its clips as they are. A video cut
again keeps a clip's hash when its file will be the same bytes: the same source file
(size, modification time, probe), the same encoding settings (`mode`, `crf`, `preset`),
the same window cut the same way at the same times (cutting is deterministic; the other
settings, a stride say, decide which windows there are, not their bytes). A video whose
inputs did not change but whose clips were damaged (truncated, emptied, deleted) is cut
again into the bytes its part recorded. Any other clip's hash is unknown (None): its
video requests are to send.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vlm_autodrive.builders.clips.cutting import CutError, index_copy
from vlm_autodrive.builders.clips.parts import clips_intact, read_memo
from vlm_autodrive.builders.clips.plan import label_cuts, plan_cuts
from vlm_autodrive.builders.clips.stage import checked_settings, clip_id, video_key
from vlm_autodrive.builders.clips.windows import Event, Window, event_offset
from vlm_autodrive.builders.core.files import memoized_sha256, read_json
from vlm_autodrive.builders.core.sections import ChunkConfig
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.ingest.records import VideoRecord


@dataclass
class PlannedClip:
    """A clip the chunk stage would leave; `video_sha256` None when not known yet."""

    clip_id: str
    video_id: str
    path: str
    label: str
    event_offset: float | None
    video_sha256: str | None


@dataclass
class ChunkPreview:
    clips: list[PlannedClip] = field(default_factory=list)
    cut: int = 0  # videos the run would cut (new or changed)
    recut: int = 0  # of those, videos cut before
    removed: int = 0  # videos that left the manifest
    rejected: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.cut or self.removed)


def preview_chunk(
    build_dir: Path,
    videos: list[VideoRecord],
    same_file: set[str],
    config: ChunkConfig,
    taxonomy: Taxonomy,
    force: bool = False,
    declared: str = "",
) -> ChunkPreview:
    """The clips `run_chunk(build_dir, config, taxonomy, force=force)` would leave after
    an ingest that records `videos`; raises ChunkSettingsChanged as the run would."""
    out = build_dir / "chunk"
    settings, old = checked_settings(out, config, taxonomy, force)
    preview = ChunkPreview()
    parts = out / "parts"
    present = {p.stem for p in parts.glob("*.json")} if parts.is_dir() else set()
    preview.removed = len(present - {v.video_id for v in videos})
    memo = read_memo(build_dir)  # read only: a dry run writes nothing
    for v in videos:
        key = video_key(v, settings, declared)
        part = _read_part(parts / f"{v.video_id}.json")
        intact = part is not None and clips_intact(build_dir, part, memo)  # else re-cut
        if part is not None and part.get("key") == key:
            if intact:
                recorded = {c["path"]: _sha(build_dir / c["path"]) for c in part["clips"]}
            else:  # only its clips were damaged (truncated, emptied, deleted): the re-cut
                # is made from the same inputs, so it gives the bytes the part recorded
                preview.cut += 1
                preview.recut += 1
                files = part.get("files") or {}  # a part from before files were recorded: none
                recorded = {path: size_sha[1] for path, size_sha in files.items()}
            preview.rejected += bool(part["reject"])
            preview.clips += [
                PlannedClip(
                    c["clip_id"],
                    c["video_id"],
                    c["path"],
                    c["label"],
                    c["event_offset"],
                    recorded.get(c["path"]),
                )
                for c in part["clips"]
            ]
            continue
        preview.cut += 1
        preview.recut += part is not None
        reuse = {}  # clip id -> (start, end, path, cut mode) of the clips cut before
        if intact and _same_encoding(old, settings) and v.video_id in same_file:
            reuse = {
                c["clip_id"]: (c["start"], c["end"], c["path"], c["cut_mode"])
                for c in part["clips"]
            }
        clips = _plan_video(build_dir, v, config, taxonomy.normal, reuse)
        if clips is None:
            preview.rejected += 1
        else:
            preview.clips += clips
    return preview


def _plan_video(
    build_dir: Path, video: VideoRecord, config: ChunkConfig, normal: str, reuse: dict
) -> list[PlannedClip] | None:
    """One video's clips as `chunk_video` would cut and label them; None: rejected."""
    event = None
    if video.has_event:
        time = min(video.event_time, video.duration)
        event = Event(video.label, min(video.event_start, time), time, video.event_end)
    try:
        index = index_copy(video.path) if config.mode in ("copy", "smart") else None
        timing = (video.max_gap, video.missing)
        plan = plan_cuts(video.duration, video.fps, video.frames, event, config, index, timing)
    except CutError:
        return None
    if plan.reject:
        return None
    times = [Window(round(c.expected.start, 6), round(c.expected.end, 6)) for c in plan.cuts]
    labelled = label_cuts(times, event, video, config, normal, Counter(plan.dropped))
    if labelled.reject:
        return None
    out = []
    for i, label in labelled.kept:
        cid = clip_id(video.video_id, plan.cuts[i].window)
        path = f"clips/{video.video_id}/{cid}.mp4"
        old = reuse.get(cid)
        t = times[i]
        now = (t.start, t.end, path, plan.cuts[i].mode)
        same = old is not None and tuple(old) == now
        sha = _sha(build_dir / path) if same else None
        out.append(
            PlannedClip(cid, video.video_id, path, label, event_offset(times[i], event), sha)
        )
    return out


# The settings a clip's bytes depend on, beside its source and the times it covers (the
# others decide which windows are cut and how they are labelled, not their bytes).
ENCODING = ("mode", "crf", "preset")


def _same_encoding(old: dict, new: dict) -> bool:
    return all(old["chunk"].get(k) == new["chunk"].get(k) for k in ENCODING)


def _read_part(path: Path) -> dict | None:
    try:
        return read_json(path) if path.exists() else None
    except (OSError, ValueError):
        return None  # cut short by a kill: the run cuts the video again


def _sha(path: Path) -> str | None:
    return memoized_sha256(str(path)) if path.is_file() else None
