"""Frame sampling for training: a clip file in, RGB frames and their metadata out.

The recipe's `video:` section decides what the model sees, because memory decides:
`fps` (frames per second of clip to keep; the paper: 30, every frame), `max_frames` (a
cap: a longer clip is sampled more sparsely, evenly over its whole length, so the event
is never cut off), and `max_pixels` (per frame: frames are resized keeping their aspect
ratio to fit the budget, both sides a multiple of `factor`, 28 for Qwen2.5-VL: 14 px
patches merged 2x2). The frame count is rounded down to a multiple of `frame_multiple`
(Qwen's temporal patch is 2 frames), so no frame is invented by padding.

Decoding is PyAV (its bundled FFmpeg): frames are decoded in order and only the chosen
ones are converted, scaled by swscale, to RGB. A clip that cannot be opened or decoded
raises `VideoDecodeError`, which the collator catches to skip the sample.

The returned `metadata` is what transformers' video processors take as `video_metadata`
(Qwen2.5-VL derives the time between temporal patches from it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class VideoDecodeError(RuntimeError):
    """A clip that could not be opened or decoded (missing, corrupt, no video stream)."""


@dataclass(frozen=True)
class VideoSettings:
    """How to sample a clip: keep `fps` frames a second, at most `max_frames`, each frame
    at most `max_pixels`; sides a multiple of `factor`, count a multiple of
    `frame_multiple`."""

    fps: float
    max_frames: int
    max_pixels: int
    factor: int = 28
    frame_multiple: int = 2


@dataclass
class SampledVideo:
    """`frames`: uint8 array (T, H, W, 3); `metadata`: a transformers `VideoMetadata` dict
    (native `fps` and `total_num_frames`, the chosen `frames_indices`, sampled size)."""

    frames: np.ndarray
    metadata: dict[str, Any]

    @property
    def sampled_fps(self) -> float:
        """Frames per second of clip time among the sampled frames."""
        m = self.metadata
        return len(m["frames_indices"]) / m["total_num_frames"] * m["fps"]


def fit_to_budget(height: int, width: int, max_pixels: int, factor: int = 28) -> tuple[int, int]:
    """(height, width) scaled to at most `max_pixels`, aspect kept, sides multiples of
    `factor` (rounded down, at least `factor`). Never upscales past the source size
    except to reach one `factor`."""
    if height <= 0 or width <= 0:
        raise ValueError(f"bad frame size {width}x{height}")
    if max_pixels < factor * factor:
        raise ValueError(f"max_pixels {max_pixels} is below one {factor}x{factor} patch")
    scale = min(1.0, math.sqrt(max_pixels / (height * width)))
    h = max(factor, math.floor(height * scale / factor) * factor)
    w = max(factor, math.floor(width * scale / factor) * factor)
    return h, w


def frame_indices(total: int, native_fps: float, settings: VideoSettings) -> list[int]:
    """Which of a clip's `total` frames to keep: `settings.fps` per second of clip, at
    most `max_frames`, evenly spread over the whole clip (the middle frame of each
    interval), count rounded down to a multiple of `frame_multiple` when possible."""
    if total <= 0:
        return []
    duration = total / native_fps
    n = min(total, settings.max_frames, max(1, math.floor(duration * settings.fps + 1e-6)))
    if n >= settings.frame_multiple:
        n -= n % settings.frame_multiple
    return [min(total - 1, int((k + 0.5) * total / n)) for k in range(n)]


def vision_tokens_upper_bound(
    settings: VideoSettings, patch: int = 14, merge: int = 2, temporal: int = 2
) -> int:
    """The most LLM tokens one clip can cost under `settings`, whatever its length and
    aspect: temporal patches x merged patches of a `max_pixels` frame."""
    per_frame = settings.max_pixels // (patch * patch * merge * merge)
    return math.ceil(settings.max_frames / temporal) * per_frame


def probe(path: str | Path) -> tuple[int, float, int, int]:
    """(frame count, fps, height, width) of a clip's first video stream, from its header."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            total = stream.frames
            if not total and stream.duration and fps:
                total = round(float(stream.duration * stream.time_base) * fps)
            h, w = stream.codec_context.height, stream.codec_context.width
    except (av.FFmpegError, IndexError, OSError) as e:
        raise VideoDecodeError(f"{path}: cannot open ({e})") from e
    if not total or not fps or not h or not w:
        raise VideoDecodeError(f"{path}: no usable video stream (frames {total}, fps {fps})")
    return total, fps, h, w


def sample_video(path: str | Path, settings: VideoSettings) -> SampledVideo:
    """Decode `path` and return the frames `settings` choose, resized to the budget.

    Raises `VideoDecodeError` when the clip cannot be opened or decoded, or yields fewer
    frames than its header promised by more than a quarter (a truncated file)."""
    import av

    total, fps, height, width = probe(path)
    wanted = frame_indices(total, fps, settings)
    out_h, out_w = fit_to_budget(height, width, settings.max_pixels, settings.factor)
    keep = {i: n for n, i in enumerate(wanted)}
    frames: list[np.ndarray | None] = [None] * len(wanted)
    decoded = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                decoded = index + 1
                if index in keep:
                    rgb = frame.reformat(width=out_w, height=out_h, format="rgb24")
                    frames[keep[index]] = rgb.to_ndarray()
                if index >= wanted[-1]:
                    break
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoDecodeError(f"{path}: decoding failed at frame {decoded} ({e})") from e
    got = [f for f in frames if f is not None]
    # Headers may overstate the count by a frame or two; a file cut short is an error.
    if not got or len(got) < 0.75 * len(wanted):
        raise VideoDecodeError(f"{path}: decoded {decoded} frames, header says {total}")
    indices = [i for i, f in zip(wanted, frames) if f is not None]
    if len(got) >= settings.frame_multiple:
        cut = len(got) - len(got) % settings.frame_multiple
        got, indices = got[:cut], indices[:cut]
    metadata = {
        "total_num_frames": total,
        "fps": fps,
        "duration": total / fps,
        "width": out_w,
        "height": out_h,
        "frames_indices": indices,
        "video_backend": "pyav",
    }
    return SampledVideo(np.stack(got), metadata)
