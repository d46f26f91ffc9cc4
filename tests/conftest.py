"""Shared fixtures: tiny real videos made with PyAV (a few KB each), and paths."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def make_video(
    path: Path,
    seconds: float = 12.0,
    fps: int = 30,
    size: tuple[int, int] = (96, 64),
    gop: int = 30,
    vfr: bool = False,
    bframes: int = 0,
) -> Path:
    """Write a small H.264 MP4 whose frames change every frame (so cuts are checkable).

    `vfr` doubles every other frame interval; `bframes` > 0 enables B-frames.
    """
    import av

    w, h = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        # The file name in the container: videos made alike under different names are
        # different files, not byte-identical duplicates (which ingest rejects).
        c.metadata["title"] = path.name
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"g": str(gop), "bf": str(bframes), "preset": "ultrafast", "threads": "1"}
        if vfr:
            s.codec_context.time_base = Fraction(1, fps * 2)
        pts = 0
        for i in range(int(seconds * fps)):
            arr = np.zeros((h, w, 3), np.uint8)
            arr[:, : (i % w) + 1] = 200  # a bar that grows: frame i is recognisable
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            if vfr:
                frame.pts, frame.time_base = pts, Fraction(1, fps * 2)
                pts += 2 if i % 2 else 4
            else:
                frame.pts = i
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    return path


def make_audio_only(path: Path, seconds: float = 2.0) -> Path:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        samples = np.zeros((1, 1024), np.float32)
        for i in range(int(seconds * 16000 / 1024)):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def videos_dir(tmp_path: Path) -> Path:
    d = tmp_path / "videos"
    d.mkdir()
    return d
