"""Real footage shapes made with PyAV for the clips tests: variable frame rate, display
rotation, odd frame sizes, other codecs, B-frames.

Every frame draws its number in binary, 12 white or black blocks across the middle of
the picture, big enough to survive lossy codecs (`frame_number` reads it back), and a red
block in the top-left corner so the picture's orientation is checkable (`corner`).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BITS = 12


def picture(number: int, width: int, height: int) -> np.ndarray:
    """Frame `number`'s picture (rgb24): its number's bits and the corner block."""
    arr = np.zeros((height, width, 3), np.uint8)
    band = slice(height // 2 - height // 8, height // 2 + height // 8)
    for bit in range(BITS):
        if number >> bit & 1:
            arr[band, bit * width // BITS : (bit + 1) * width // BITS] = 220
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
    x264_params: str = "",
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
        if codec == "mpeg4":  # its time base's denominator is at most 65535
            time_base = Fraction(1, fps)
        s.codec_context.time_base = time_base
        options = {"g": str(gop), "bf": str(bframes)}
        if codec == "libx264":
            options.update(preset="ultrafast", threads="1")
            if x264_params:
                options["x264-params"] = x264_params
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


def frame_number(frame) -> int:
    """The number a decoded (upright, unrotated) frame draws."""
    gray = frame.to_ndarray(format="gray")
    row, w = gray[gray.shape[0] // 2], gray.shape[1]
    centres = [(2 * bit + 1) * w // (2 * BITS) for bit in range(BITS)]
    return sum(1 << bit for bit, x in enumerate(centres) if row[x] > 110)


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
