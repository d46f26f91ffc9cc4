"""Folders of numbered frames -> one H.264 mp4 each (`autodrive frames-to-video`).

DoTA and MM-AU ship frames, not videos (`frames/<video_id>/000123.jpg`,
`<type>/<video>/images/000001.jpg`); the pipeline cuts videos.
In: `src`, and a `FramesConfig` (fps, x264 quality, workers). Every folder at or below
`src` that holds image files (`.jpg`, `.jpeg`, `.png`) whose names end in a number is one
video: its frames in numeric order (`2.jpg` before `10.jpg`), numbered without gaps from
0 or 1, all of one size.
Out: `out/<folder relative to src>.mp4` (a last `images` folder dropped from the name:
`1/001/images` -> `1/001.mp4`; `src` itself -> `<src name>.mp4`), H.264 (libx264,
yuv420p, constant `fps`, one thread per process, so the bytes depend on the frames and
settings only), written atomically (a hidden temporary name, then rename). Each mp4
carries a stamp (a hash of the settings and the frames' bytes): a re-run skips a video
whose output has the same stamp, and re-encodes it otherwise. A folder with a gap in its
numbering, a frame that cannot be read or one of another size is a reject naming the
file. An odd width or height is cropped by one pixel (yuv420p needs even sizes).
`merge_rejects` writes a run's rejects into OUT's rejects file beside those of runs on
other source folders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from fractions import Fraction
from pathlib import Path

from pydantic import Field, field_validator
from tqdm import tqdm

from vlm_autodrive.builders.clips.cutting import x264_deterministic_params
from vlm_autodrive.builders.core.children import worker_pool
from vlm_autodrive.builders.core.files import atomic_path
from vlm_autodrive.builders.core.stage import RejectRecord, read_rejects, write_rejects
from vlm_autodrive.builders.core.strict import Strict

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
STAMP_PREFIX = "autodrive frames-to-video "
_NUMBERED = re.compile(r"^(.*?)(\d+)$")


class FramesConfig(Strict):
    """Encoding settings; every one of them is part of each video's stamp."""

    fps: float = Field(gt=0, description="frame rate of the frames (DoTA 10, MM-AU 30)")
    crf: int = Field(18, ge=0, le=51, description="x264 quality (lower = better, bigger)")
    preset: str = Field("veryfast", description="x264 preset")
    workers: int = Field(0, ge=0, description="processes (0 = one per core)")

    @field_validator("preset")
    @classmethod
    def _x264_preset(cls, v: str) -> str:
        from vlm_autodrive.builders.core.sections import check_x264_preset

        return check_x264_preset(v)


@dataclasses.dataclass
class FrameJob:
    """One folder to encode: its frames in order, the mp4 to write."""

    folder: str
    out: str
    frames: list[str]


@dataclasses.dataclass
class FramesResult:
    """`folders == len(written) + len(skipped) + len(rejects)` always holds."""

    folders: int
    written: list[str]
    skipped: list[str]
    rejects: list[RejectRecord]
    cropped: list[str]

    def summary(self) -> str:
        crop = f" ({len(self.cropped)} cropped to an even size)" if self.cropped else ""
        return (
            f"{self.folders} frame folders = {len(self.written)} encoded{crop}"
            f" + {len(self.skipped)} already done + {len(self.rejects)} rejected"
        )


class FrameError(ValueError):
    """A folder that cannot become a video; the message names the file."""


def output_path(folder: Path, src: Path, out: Path) -> Path:
    """Where the mp4 of `folder` goes: its path under `src`, mirrored under `out`."""
    parts = list(folder.relative_to(src).parts)
    if parts and parts[-1] == "images":
        parts.pop()
    if not parts:
        parts = [src.resolve().name]
    return out.joinpath(*parts[:-1], parts[-1] + ".mp4")


def order_frames(folder: Path, names: list[str]) -> list[str]:
    """The frame file names of `folder` in numeric order; FrameError for a name with no
    number, mixed prefixes, a repeated number, a gap, or a first number above 1."""
    numbered: dict[int, str] = {}
    prefix = None
    for name in sorted(names):
        m = _NUMBERED.match(Path(name).stem)
        if not m:
            raise FrameError(f"{folder / name}: a frame name must end in its number")
        if prefix is not None and m[1] != prefix:
            raise FrameError(f"{folder / name}: prefix {m[1]!r}, but other frames have {prefix!r}")
        prefix, n = m[1], int(m[2])
        if n in numbered:
            raise FrameError(f"{folder / name}: frame {n} again (also {numbered[n]})")
        numbered[n] = name
    order = sorted(numbered)
    if order[0] > 1:
        raise FrameError(
            f"{folder / numbered[order[0]]}: the frames start at number {order[0]}, not 0 or 1, "
            "so the video's first frame would not be the clip's first"
        )
    for a, b in itertools.pairwise(order):
        if b != a + 1:
            missing = a + 1 if b == a + 2 else f"{a + 1}-{b - 1}"
            raise FrameError(
                f"{folder}: frame {missing} is missing (between {numbered[a]} and {numbered[b]})"
            )
    return [numbered[n] for n in order]


def plan_jobs(src: Path, out: Path) -> tuple[list[FrameJob], list[RejectRecord]]:
    """Find the frame folders below `src`; the jobs to run and the folders rejected."""
    if not src.is_dir():
        raise FileNotFoundError(f"frames folder not found: {src}")
    jobs: list[FrameJob] = []
    rejects: list[RejectRecord] = []
    taken: dict[Path, Path] = {}
    for folder in sorted([src, *(p for p in src.rglob("*") if p.is_dir())]):
        if any(part.startswith(".") for part in folder.relative_to(src).parts):
            continue
        names = [
            f.name
            for f in folder.iterdir()
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() and not f.name.startswith(".")
        ]
        if not names:
            continue
        target = output_path(folder, src, out)
        video = target.stem
        try:
            if target in taken:
                raise FrameError(f"{folder}: its video {target} is also {taken[target]}'s")
            taken[target] = folder
            jobs.append(FrameJob(str(folder), str(target), order_frames(folder, names)))
        except FrameError as e:
            rejects.append(RejectRecord("frames-to-video", str(folder), None, video, str(e)))
    return jobs, rejects


def frames_stamp(job: FrameJob, config: FramesConfig) -> str:
    """A hash of the settings, the frame order and every frame's bytes."""
    import av

    settings = {"fps": config.fps, "crf": config.crf, "preset": config.preset}
    h = hashlib.sha256(json.dumps([settings, av.__version__, job.frames]).encode())
    for name in job.frames:
        h.update(hashlib.sha256((Path(job.folder) / name).read_bytes()).digest())
    return h.hexdigest()


def read_stamp(path: Path) -> str | None:
    """The stamp a finished mp4 carries, or None (missing, unreadable, not ours)."""
    import av

    if not path.exists():
        return None
    try:
        with av.open(str(path)) as c:
            comment = c.metadata.get("comment", "")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        return None
    return comment[len(STAMP_PREFIX) :] if comment.startswith(STAMP_PREFIX) else None


def encode_job(job: FrameJob, config: FramesConfig) -> tuple[str, str | None]:
    """Encode one folder unless its output is up to date (runs in a worker process).

    Returns (status, message): status `written`, `cropped` (written, one pixel cut off),
    `skipped` (up to date) or `reject`, with the reject's message naming the file.
    """
    out = Path(job.out)
    try:
        stamp = frames_stamp(job, config)
    except OSError as e:
        return "reject", f"{job.folder}: cannot read a frame: {e}"
    if read_stamp(out) == stamp:
        return "skipped", None
    try:
        cropped = _encode(job, config, stamp, out)
    except FrameError as e:
        return "reject", str(e)
    return ("cropped" if cropped else "written"), None


def _encode(job: FrameJob, config: FramesConfig, stamp: str, out: Path) -> bool:
    import av

    size: tuple[int, int] | None = None
    with atomic_path(out) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        container.metadata["comment"] = STAMP_PREFIX + stamp
        stream = container.add_stream("libx264", rate=Fraction(config.fps).limit_denominator(1001))
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {
            "crf": str(config.crf),
            "preset": config.preset,
            # the same frames give the same bytes on every CPU (see clips/cutting.py)
            "x264-params": ":".join(x264_deterministic_params()),
        }
        for i, name in enumerate(job.frames):
            path = Path(job.folder) / name
            rgb = _read_frame(path)
            h, w = rgb.shape[:2]
            if size is None:
                size = (w, h)
                stream.width, stream.height = w - w % 2, h - h % 2
            elif (w, h) != size:
                raise FrameError(f"{path}: {w}x{h}, but the first frame is {size[0]}x{size[1]}")
            rgb = rgb[: stream.height, : stream.width]
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame = frame.reformat(format="yuv420p", threads=1)
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return size is not None and bool(size[0] % 2 or size[1] % 2)


def _read_frame(path: Path):
    import av

    try:
        with av.open(str(path)) as c:
            frame = next(c.decode(video=0))
            return frame.to_ndarray(format="rgb24")
    except (av.error.FFmpegError, OSError, StopIteration, ValueError) as e:
        raise FrameError(f"{path}: not a readable image ({e})") from None


def _run(args: tuple[FrameJob, FramesConfig]) -> tuple[str, str | None]:
    return encode_job(*args)


def frames_to_video(
    src: Path, out: Path, config: FramesConfig, progress: bool = True
) -> FramesResult:
    """Encode every frame folder below `src` into `out` (in parallel, resumable)."""
    from vlm_autodrive.builders.core.lock import remove_stale_tmp
    from vlm_autodrive.builders.core.sections import worker_count

    remove_stale_tmp(Path(out))  # half-written videos of a killed run (a dead pid's)
    jobs, rejects = plan_jobs(Path(src), Path(out))
    result = FramesResult(len(jobs) + len(rejects), [], [], rejects, [])
    workers = min(worker_count(config.workers), max(len(jobs), 1))
    bar = tqdm(total=len(jobs), desc="frames-to-video", unit="video", disable=not progress)
    work = [(job, config) for job in jobs]
    if workers <= 1:
        outcomes = map(_run, work)
        _collect(result, jobs, outcomes, bar)
    else:
        with worker_pool(workers) as pool:  # workers die with this process
            _collect(result, jobs, pool.map(_run, work), bar)
    bar.close()
    assert result.folders == len(result.written) + len(result.skipped) + len(result.rejects)
    return result


def merge_rejects(path: Path, rejects: list[RejectRecord], src: Path) -> list[RejectRecord]:
    """Write this run's `rejects` into the rejects file `path`, keeping earlier runs' ones.

    The MM-AU layout is encoded one group folder at a time into one OUT: a run replaces
    the frames-to-video records of folders at or below its own `src` (a folder fixed
    since loses its reject; one still bad gets this run's reason) and keeps every other
    record. Sorted by folder, so re-running any group, in any order, writes the same
    file. Folders are compared resolved (from the working folder). Returns what it wrote.
    """
    top = Path(src).resolve()

    def this_run(r: RejectRecord) -> bool:
        folder = Path(r.source).resolve()
        return r.stage == "frames-to-video" and (folder == top or top in folder.parents)

    kept = [r for r in read_rejects(path) if not this_run(r)]
    merged = sorted([*kept, *rejects], key=lambda r: (r.source, r.video_id or "", r.reason))
    write_rejects(path, merged)
    return merged


def _collect(result: FramesResult, jobs, outcomes, bar) -> None:
    for job, (status, message) in zip(jobs, outcomes):
        bar.update()
        if status == "skipped":
            result.skipped.append(job.out)
        elif status == "reject":
            video = Path(job.out).stem
            result.rejects.append(RejectRecord("frames-to-video", job.folder, None, video, message))
        else:
            result.written.append(job.out)
            if status == "cropped":
                result.cropped.append(job.out)
