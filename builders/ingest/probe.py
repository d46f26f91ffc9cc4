"""Probing a source video with PyAV: is it usable, and what are its stream facts.

In: a file path. Out: its `StreamFacts`, or a `ProbeError` naming what is wrong.

Probing reads every packet of the video stream and decodes every frame (one pass, with
the decoder's threads): a file corrupt mid-stream is rejected naming the first frame
that does not decode, before any clip is cut or copied from it. It also finds missing,
empty, audio-only and truncated files, and files that are not video: an image (a PNG,
whatever its name), a single frame, a picture a few pixels wide.

Timing: the nominal frame rate is the rate whose grid the frames lie on (of the
stream's declared rates and the standard ones near the median interval), so a phone or
dashcam video that drops a frame or jitters by a few milliseconds keeps its nominal
30 fps. Probing records how far frames sit off that
grid (`jitter_ms`), the longest interval (`max_gap`) and the share of grid slots no
frame falls on (`missing`); the chunk stage decides from these what it accepts. The
display rotation (a phone's display matrix) is recorded as counter-clockwise degrees,
0, 90, 180 or 270, as ffmpeg's `-display_rotation` sets it.
An OSError (disk, permissions) is the machine's, not the video's: it propagates and
fails the run instead of being recorded as a reject.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
import statistics
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

# What a path that is not a regular file is, by its stat mode (a FIFO blocks whoever
# opens it; a directory or device is no video either).
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def not_regular(mode: int) -> str | None:
    """`not a regular file: a FIFO` (or a directory, socket, device) for a stat mode
    that is not a regular file's; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a file")
    return f"not a regular file: {kind}"


# stat errors that mean "no such file" (as Path.exists reads them), not the machine's
_NOT_THERE = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)


class ProbeError(Exception):
    """The file cannot be used as a source video; the message says why."""


@dataclass(frozen=True)
class StreamFacts:
    """What probing found: seconds, frames per second, frame count, size, codec."""

    duration: float
    fps: float
    frames: int
    width: int
    height: int
    codec: str
    rotation: int = 0  # display rotation, counter-clockwise degrees
    jitter_ms: float = 0.0  # the farthest a frame's time lies off the nominal grid
    max_gap: float = 0.0  # the longest interval between two frames, seconds
    missing: float = 0.0  # share of the nominal grid's frames absent (0 to 1)


# Frame rates cameras record at.
STANDARD_RATES = tuple(
    Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "50", "60000/1001", "60")
)
# A rate whose frame interval is within this share of the median interval is a candidate.
DECLARED_AGREES = 0.02
# Fewer frames than this, or a smaller picture side in pixels, is not a video.
MIN_FRAMES = 2
MIN_SIDE = 16
# Demuxers of still images: a PNG or JPEG named .mp4 opens as one of these.
IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "gif")


def probe_video(path: str | Path, full_decode: bool = True) -> StreamFacts:
    """Stream facts of a video file, or ProbeError with the reason.

    `full_decode=False` decodes only the first frame (for measuring what the full
    decode costs, benchmarks/bench_ingest.py).
    """
    import av

    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as e:
        if e.errno not in _NOT_THERE:
            raise
        raise ProbeError(f"file not found: {p}") from None
    kind = not_regular(st.st_mode)
    if kind:  # checked before opening: a FIFO would block the open for ever
        raise ProbeError(f"{kind}: {p}")
    if st.st_size == 0:
        raise ProbeError(f"empty file (0 bytes): {p}")
    try:
        container = av.open(str(p))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        if isinstance(e, OSError):
            raise
        raise ProbeError(f"cannot open as a video (corrupt or not a video): {e}") from None
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise ProbeError(f"no video stream (has: {', '.join(kinds)})")
        fmt = container.format.name
        if any(f in fmt.split(",") for f in IMAGE_FORMATS):
            raise ProbeError(f"an image ({fmt}), not a video")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if min(width, height) < MIN_SIDE:
            raise ProbeError(
                f"a {width}x{height} picture is not a video (at least {MIN_SIDE} px a side)"
            )
        # AVI declares ticks, not frames: a stream copy from an mp4 keeps the mp4's
        # fine time base (ffmpeg shows 600 fps, 30 tbr) and declares 1800 "frames" for
        # 3 s; its frame rate is r_frame_rate (guessed_rate), its length in ticks.
        avi = "avi" in fmt.split(",")
        rate = (stream.guessed_rate if avi else None) or stream.average_rate or stream.guessed_rate
        if not rate:
            raise ProbeError("the video stream declares no frame rate")
        pts, decode_problem, rotation = _read_all(
            container, stream, Fraction(rate), full_decode, avi
        )
        if len(pts) < MIN_FRAMES:
            raise ProbeError(f"holds {len(pts)} frame(s): a still image, not a video")
        declared = stream.frames
        if avi and declared:
            declared = round(declared * stream.time_base * Fraction(rate))
        if declared and len(pts) < declared:
            raise ProbeError(f"truncated: {len(pts)} of {declared} declared frames present")
        if decode_problem:
            raise ProbeError(decode_problem)
        tb = stream.time_base
        rates = [stream.base_rate, rate, stream.guessed_rate, stream.average_rate]
        timing = frame_timing(sorted(pts), tb, [Fraction(r) for r in rates if r])
        if not full_decode:
            try:
                container.seek(0)
                first = next(container.decode(stream))
            except (av.error.FFmpegError, StopIteration) as e:
                if isinstance(e, OSError):
                    raise
                raise ProbeError(f"the first frame does not decode: {e}") from None
            rotation = first.rotation
        return StreamFacts(
            width=width,
            height=height,
            codec=stream.codec_context.name,
            rotation=round(rotation or 0) % 360,
            **timing,
        )


def _read_all(
    container, stream, rate: Fraction, decode: bool, avi: bool = False
) -> tuple[list[int], str | None, int]:
    """The pts of every video packet, with `decode` why not every frame decodes (naming
    the first frame that does not) or None, and the first frame's display rotation.
    Frames decode with threads.
    `avi`: the dts instead (AVI stores decode times only; the demuxer guesses the
    presentation times, the last one a tick after its decode time)."""
    import av

    if decode:
        stream.codec_context.thread_type = "AUTO"
    pts: list[int] = []
    decoded = 0
    problem = None
    rotation = 0
    try:
        for packet in container.demux(stream):
            stamp = packet.dts if avi else packet.pts
            if stamp is not None and packet.size:
                pts.append(stamp)
            if not decode or problem:
                continue
            try:
                frames = packet.decode()  # the last, empty packet flushes
                if frames and not decoded:
                    rotation = frames[0].rotation
                decoded += len(frames)
            except av.error.FFmpegError as e:
                if isinstance(e, OSError):
                    raise
                frame = round((pts[-1] - min(pts)) * stream.time_base * rate) if pts else 0
                problem = (
                    f"frame {frame} ({float(frame / rate):.2f} s) does not decode "
                    f"(corrupt mid-stream): {e}"
                )
    except av.error.FFmpegError as e:
        if isinstance(e, OSError):
            raise
        raise ProbeError(f"truncated or corrupt stream after {len(pts)} frames: {e}") from None
    if decode and not problem and decoded < len(pts):
        problem = (
            f"only {decoded} of {len(pts)} frames decode: frame {decoded} "
            f"({float(decoded / rate):.2f} s) and later are missing"
        )
    return pts, problem, rotation


def nominal_rate(times: list[Fraction], declared: list[Fraction]) -> Fraction:
    """The frame rate the frames keep: of the declared rates and the standard ones
    within 2% of the median interval's, the one whose grid the frames lie closest to
    (the mean distance, in frames); the median interval's rate when none is near.

    A declared rate can be off: r_frame_rate is 179/6 for a 30 fps phone video with
    6 ms of jitter, the average rate 29.25 for one with 2% of its frames dropped; the
    grid fit tells 30 from 30000/1001 over a few seconds (0.1% apart).
    """
    intervals = [b - a for a, b in itertools.pairwise(times) if b > a] or [Fraction(1, 30)]
    median = statistics.median_low(intervals)
    near = [
        r for r in (*declared, *STANDARD_RATES) if abs(1 / r - median) <= DECLARED_AGREES * median
    ]
    if not near:
        return (1 / median).limit_denominator(1001)
    seconds = [float(t) for t in times]

    def misfit(rate: Fraction) -> float:
        r = float(rate)
        return sum(abs(t * r - round(t * r)) for t in seconds) / len(seconds)

    return min(dict.fromkeys(near), key=misfit)


def frame_timing(pts: list[int], tb: Fraction, declared: list[Fraction]) -> dict:
    """The timing facts of frames at `pts` (sorted): duration (from the first frame to
    the end of the last), nominal fps, frames, jitter_ms, max_gap, missing."""
    t = [(p - pts[0]) * tb for p in pts]
    intervals = [b - a for a, b in itertools.pairwise(t) if b > a] or [Fraction(1, 30)]
    rate = nominal_rate(t, declared)
    slots = {round(x * rate) for x in t}
    grid = round(t[-1] * rate) + 1
    return {
        "duration": round(float(t[-1] + 1 / rate), 6),
        "fps": float(rate),
        "frames": len(pts),
        "jitter_ms": round(max(float(abs(x - round(x * rate) / rate)) for x in t) * 1000, 3),
        "max_gap": round(float(max(intervals)), 6),
        "missing": round(1 - len(slots) / grid, 6),
    }
