"""Probing a source video with PyAV: is it usable, and what are its stream facts.

In: a file path. Out: its `StreamFacts`, or a `ProbeError` naming what is wrong.

Probing reads every packet of the video stream and decodes every frame (one pass, with
the decoder's threads): a file corrupt mid-stream is rejected naming the first frame
that does not decode, before any clip is cut or copied from it. It also finds missing,
empty, audio-only, truncated and variable-frame-rate files, and files that are not
video: an image (a PNG, whatever its name), a single frame, a picture a few pixels wide.
An OSError (disk, permissions) is the machine's, not the video's: it propagates and
fails the run instead of being recorded as a reject.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path


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


# Real dashcams jitter by a millisecond or so; a frame interval off the nominal one
# by more than this share is variable frame rate, which clips at "native fps" cannot keep.
VFR_TOLERANCE = 0.25
# Fewer frames than this, or a smaller picture side in pixels, is not a video.
MIN_FRAMES = 2
MIN_SIDE = 16
# Demuxers of still images: a PNG or JPEG named .mp4 opens as one of these.
IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "gif")


def probe_video(path: str | Path, full_decode: bool = True) -> StreamFacts:
    """Stream facts of a constant-frame-rate video file, or ProbeError with the reason.

    `full_decode=False` decodes only the first frame (for measuring what the full
    decode costs, benchmarks/bench_ingest.py).
    """
    import av

    p = Path(path)
    if not p.exists():
        raise ProbeError(f"file not found: {p}")
    if p.stat().st_size == 0:
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
        pts, decode_problem = _read_all(container, stream, Fraction(rate), full_decode, avi)
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
        _check_constant_rate(sorted(pts), tb, Fraction(rate))
        if not full_decode:
            try:
                container.seek(0)
                next(container.decode(stream))
            except (av.error.FFmpegError, StopIteration) as e:
                if isinstance(e, OSError):
                    raise
                raise ProbeError(f"the first frame does not decode: {e}") from None
        return StreamFacts(
            duration=round(float(len(pts) / Fraction(rate)), 6),
            fps=float(rate),
            frames=len(pts),
            width=width,
            height=height,
            codec=stream.codec_context.name,
        )


def _read_all(
    container, stream, rate: Fraction, decode: bool, avi: bool = False
) -> tuple[list[int], str | None]:
    """The pts of every video packet and, with `decode`, why not every frame decodes
    (naming the first frame that does not), or None. Frames decode with threads.
    `avi`: the dts instead (AVI stores decode times only; the demuxer guesses the
    presentation times, the last one a tick after its decode time)."""
    import av

    if decode:
        stream.codec_context.thread_type = "AUTO"
    pts: list[int] = []
    decoded = 0
    problem = None
    try:
        for packet in container.demux(stream):
            stamp = packet.dts if avi else packet.pts
            if stamp is not None and packet.size:
                pts.append(stamp)
            if not decode or problem:
                continue
            try:
                decoded += len(packet.decode())  # the last, empty packet flushes
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
    return pts, problem


def _check_constant_rate(pts: list[int], tb: Fraction, rate: Fraction) -> None:
    if len(pts) < 3:
        return
    nominal = 1 / rate
    deltas = [(b - a) * tb for a, b in itertools.pairwise(pts)]
    lo, hi = min(deltas), max(deltas)
    if abs(lo - nominal) > VFR_TOLERANCE * nominal or abs(hi - nominal) > VFR_TOLERANCE * nominal:
        raise ProbeError(
            f"variable frame rate: frame intervals from {float(lo) * 1000:.1f} to "
            f"{float(hi) * 1000:.1f} ms (nominal {float(nominal) * 1000:.1f} ms); "
            "re-encode it at a constant frame rate first"
        )
