"""Perceptual hashes of videos: near-duplicate sources (a re-encoded or resized copy).

In: a video file. Out: a `VideoHash` whose `signature` holds, for each of FRAMES frames,
the 63 lowest non-constant 2-D DCT coefficients (pHash's 8x8 block, DC dropped) of the
frame scaled to 32x32 grey, L2-normalised: the frame at fractions (i + 0.5) / FRAMES of
the video's duration, decoded with PyAV, scaled by swscale (area averaging). Sampling at
fractions of the duration, not at keyframes, gives a copy with another keyframe interval,
frame size or bitrate the same frames; grey 32x32 and low frequencies make it robust to
resizing and re-encoding noise; dropping DC and normalising, to brightness and contrast.

Two videos' distance is 1 - the mean cosine of their frames' coefficient vectors (0 for
the same picture, ~0.5-1 for unrelated ones); at or below the threshold they are
near-duplicates. Why not pHash's 64 bits (each coefficient against the median): on the
flat frames of dashcam scenes (road, sky) most coefficients sit near the median, and a
re-encode flipped 22 of 64 bits of a frame whose pixels moved by 1.2 grey levels, so a
copy lay farther (0.22) than two different synthetic videos (0.17). The cosine keeps the
magnitudes: copies at most 0.007, different videos at least 0.091 on the 12-video sample
(`calibrate.py` measures it; docs/look/audit.md). `DEFAULT_THRESHOLD` sits between.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

FRAMES = 8
HASH_SIZE = 8  # the 8x8 lowest DCT frequencies, DC dropped: 63 numbers a frame
SCALE = 32  # frames are scaled to 32x32 grey before the DCT
DEFAULT_THRESHOLD = 0.03  # 1 - mean frame cosine at or below: a near-duplicate


@dataclass
class VideoHash:
    """One video's perceptual hash: `signature` (FRAMES x 63 float32, each frame's row of
    unit length, flattened) or `error` (why the file could not be hashed)."""

    video_id: str
    path: str
    signature: np.ndarray | None = None
    error: str = ""


@lru_cache(maxsize=1)
def _dct_matrix(n: int = SCALE) -> np.ndarray:
    """The orthonormal DCT-II matrix D: D @ x is the DCT of the column vector x."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


def frame_signature(grey: np.ndarray) -> np.ndarray:
    """The 63 low-frequency AC DCT coefficients of a SCALE x SCALE grey frame, of unit
    length (all zeros for a flat frame)."""
    d = _dct_matrix(grey.shape[0])
    coeffs = (d @ grey.astype(np.float64) @ d.T)[:HASH_SIZE, :HASH_SIZE].ravel()[1:]
    norm = np.linalg.norm(coeffs)
    return (coeffs / norm if norm > 1e-9 else coeffs * 0).astype(np.float32)


def hash_video(path: Path, video_id: str = "", frames: int = FRAMES) -> VideoHash:
    """The perceptual hash of the video at `path`; a VideoHash with `error` (never an
    exception) when it cannot be read, so one bad file does not stop the audit."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            duration = _duration(container, stream)
            if duration <= 0:
                return VideoHash(video_id, str(path), error="no duration")
            times = [(i + 0.5) / frames * duration for i in range(frames)]
            grey = [_frame_at(container, stream, t) for t in times]
    except (av.error.FFmpegError, OSError, IndexError) as e:
        return VideoHash(video_id, str(path), error=f"{type(e).__name__}: {e}")
    if any(g is None for g in grey):
        return VideoHash(video_id, str(path), error="a sampled frame could not be decoded")
    return VideoHash(video_id, str(path), np.concatenate([frame_signature(g) for g in grey]))


def _duration(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return 0.0


def _frame_at(container, stream, t: float) -> np.ndarray | None:
    """The first frame at or after `t` seconds (the last one when `t` is past the end),
    scaled to SCALE x SCALE grey: seek to the keyframe before, decode forward."""
    tb = stream.time_base
    start = stream.start_time or 0
    container.seek(int(t / tb) + start, stream=stream, backward=True)
    last = None
    for frame in container.decode(stream):
        last = frame
        if frame.pts is not None and (frame.pts - start) * tb >= t - 1e-6:
            break
    if last is None:
        return None
    small = last.reformat(width=SCALE, height=SCALE, format="gray", interpolation="AREA")
    return small.to_ndarray()[:, :SCALE]


def decode_all_frames(path: Path) -> int:
    """Decode every frame of the video at `path` (the benchmark's baseline: what hashing
    every frame would cost); returns the number of frames."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def signature_matrix(hashes: list[VideoHash]) -> np.ndarray:
    """The signatures as a (videos, FRAMES * 63) float32 array (hashes with an error
    left out by the caller)."""
    if not hashes:
        return np.zeros((0, FRAMES * (HASH_SIZE * HASH_SIZE - 1)), np.float32)
    return np.stack([h.signature for h in hashes]).astype(np.float32)


def distance(a: VideoHash, b: VideoHash) -> float:
    """1 - the mean cosine of the two videos' frames: 0 the same picture."""
    frames = len(a.signature) // (HASH_SIZE * HASH_SIZE - 1)
    return float(1.0 - np.dot(a.signature, b.signature) / frames)


def near_pairs(
    hashes: list[VideoHash], threshold: float = DEFAULT_THRESHOLD, block: int = 1024
) -> list[tuple[int, int, float]]:
    """Index pairs (i < j) of `hashes` at distance <= `threshold`, with the distance.
    Every pair is compared, a block of rows against all at a time (one matrix product:
    10,000 videos take a few seconds; memory block x videos)."""
    m = signature_matrix(hashes)
    n, frames = len(m), FRAMES
    out = []
    for lo in range(0, n, block):
        d = 1.0 - (m[lo : lo + block] @ m.T) / frames
        ii, jj = np.nonzero(d <= threshold)
        for i, j in zip(ii.tolist(), jj.tolist(), strict=True):
            if lo + i < j:
                out.append((lo + i, j, round(float(d[i, j]), 4)))
    return sorted(out)


def pair_distances(hashes: list[VideoHash]) -> np.ndarray:
    """Every pair's distance (i < j), for the threshold's false-positive measurement."""
    m = signature_matrix(hashes)
    d = 1.0 - (m @ m.T) / FRAMES
    return d[np.triu_indices(len(m), k=1)]
