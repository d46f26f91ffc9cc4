"""Real footage shapes made with PyAV for the clips tests: variable frame rate, display
rotation, odd frame sizes, other codecs, B-frames.

Every frame draws its number: a bar `number % width + 1` pixels wide across the middle
row (`bar_width` reads it back), and a bright block in the top-left corner so the
picture's orientation is checkable (`corner`).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def picture(number: int, width: int, height: int) -> np.ndarray:
    """Frame `number`'s picture (rgb24): the bar and the corner block."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[height // 2 - 2 : height // 2 + 2, : (number % width) + 1] = 200
    arr[: height // 4, : width // 4, 0] = 250  # the orientation mark: red, top left
    return arr


def make_footage(
    path: Path,
    times: list[float] | None = None,
    seconds: float = 4.0,
    fps: int = 30,
    size: tuple[int, int] = (96, 64),
    codec: str = "libx264",
    gop: int = 30,
    bframes: int = 0,
    rotation: int = 0,
    time_base: Fraction = Fraction(1, 90000),
) -> Path:
    """A video of frames shown at `times` (seconds; default: every 1/fps for `seconds`),
    frame i drawing number round(time * fps), encoded with `codec`; `rotation`: the
    display rotation flag (counter-clockwise degrees, as ffmpeg's -display_rotation)."""
    w, h = size
    if times is None:
        times = [i / fps for i in range(int(seconds * fps))]
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {"libvpx-vp9": "webm", "mpeg4": "avi"}.get(codec, "mp4")
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.time_base = time_base
        options = {"g": str(gop), "bf": str(bframes)}
        if codec == "libx264":
            options.update(preset="ultrafast", threads="1")
        if codec == "libvpx-vp9":  # fast; VP9 encodes odd sizes (x264 cannot)
            options.update(deadline="realtime", **{"cpu-used": "8"})
        if codec == "libx265":
            options["x265-params"] = f"bframes={bframes}:keyint={gop}:log-level=error"
        s.options = options
        if rotation:
            s.set_display_rotation(rotation)
        for t in times:
            number = round(t * fps)
            frame = av.VideoFrame.from_ndarray(picture(number, w, h), format="rgb24")
            frame.pts, frame.time_base = round(t / time_base), time_base
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    return path


def bar_width(frame) -> int:
    """The number a decoded frame draws (+1): its bar's width on the middle row."""
    gray = frame.to_ndarray(format="gray")
    return int((gray[gray.shape[0] // 2] > 100).sum())


def shown(path: Path) -> list:
    """Every frame the file shows when decoded, in order."""
    with av.open(str(path)) as c:
        return list(c.decode(c.streams.video[0]))


def corner(frame) -> str:
    """Which corner of the picture as displayed (the frame's rotation flag applied)
    holds the orientation mark: `tl`, `tr`, `bl` or `br`."""
    rgb = np.rot90(frame.to_ndarray(format="rgb24"), k=(frame.rotation or 0) // 90)
    red = (rgb[..., 0].astype(int) - rgb[..., 1]) > 100
    h, w = red.shape
    quads = {
        "tl": red[: h // 2, : w // 2],
        "tr": red[: h // 2, w // 2 :],
        "bl": red[h // 2 :, : w // 2],
        "br": red[h // 2 :, w // 2 :],
    }
    return max(quads, key=lambda q: quads[q].sum())
