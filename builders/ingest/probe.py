"""Probing a source video with PyAV: is it usable, and what are its stream facts.

Probing demuxes every packet of the video stream (no decoding, so it is cheap) and
decodes the first frame. That finds missing, empty, audio-only, corrupt, truncated and
variable-frame-rate files before any clip is cut.
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


def probe_video(path: str | Path) -> StreamFacts:
    """Stream facts of a constant-frame-rate video file, or ProbeError with the reason."""
    import av

    p = Path(path)
    if not p.exists():
        raise ProbeError(f"file not found: {p}")
    if p.stat().st_size == 0:
        raise ProbeError(f"empty file (0 bytes): {p}")
    try:
        container = av.open(str(p))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise ProbeError(f"cannot open as a video (corrupt or not a video): {e}") from None
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise ProbeError(f"no video stream (has: {', '.join(kinds)})")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise ProbeError("the video stream declares no frame rate")
        pts = []
        try:
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None:
                    pts.append(packet.pts)
        except av.error.FFmpegError as e:
            raise ProbeError(f"truncated or corrupt stream after {len(pts)} frames: {e}") from None
        if not pts:
            raise ProbeError("the video stream holds no frames")
        declared = stream.frames
        if declared and len(pts) < declared:
            raise ProbeError(f"truncated: {len(pts)} of {declared} declared frames present")
        tb = stream.time_base
        _check_constant_rate(sorted(pts), tb, Fraction(rate))
        try:
            container.seek(0)
            next(container.decode(stream))
        except (av.error.FFmpegError, StopIteration) as e:
            raise ProbeError(f"the first frame does not decode: {e}") from None
        return StreamFacts(
            duration=round(float(len(pts) / Fraction(rate)), 6),
            fps=float(rate),
            frames=len(pts),
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            codec=stream.codec_context.name,
        )


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
