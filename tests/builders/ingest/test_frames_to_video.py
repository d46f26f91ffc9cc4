"""frames-to-video on tiny generated frames in DoTA's and MM-AU's layouts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from vlm_autodrive.builders.ingest.frames_to_video import (
    FrameError,
    FramesConfig,
    frames_to_video,
    order_frames,
)
from vlm_autodrive.cli import main

Image = pytest.importorskip("PIL.Image")


def _frames(folder: Path, numbers, name="{:06d}.jpg", size=(48, 32)) -> None:
    """Frames whose brightness grows with their number, so the order can be checked."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        level = min(20 + 12 * n, 250)
        Image.fromarray(np.full((size[1], size[0], 3), level, np.uint8)).save(
            folder / name.format(n)
        )


def _decode(path: Path) -> tuple[list[float], av.video.stream.VideoStream, tuple[int, int]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
        return [float(f.mean()) for f in frames], s, frames[0].shape[:2]


def _layouts(src: Path) -> None:
    _frames(src / "dota" / "0RJPQ_97dcs_000387", range(0, 12))  # DoTA: from 0, padded
    _frames(src / "mmau" / "1" / "001" / "images", range(1, 16), name="{}.png")  # unpadded
    _frames(src / "mmau" / "2" / "001" / "images", range(1, 5), name="{:06d}.jpg")


def test_layouts_order_and_stream(tmp_path):
    _layouts(tmp_path / "src")
    res = frames_to_video(tmp_path / "src", tmp_path / "out", FramesConfig(fps=10), False)
    out = tmp_path / "out"
    assert sorted(Path(p).relative_to(out).as_posix() for p in res.written) == [
        "dota/0RJPQ_97dcs_000387.mp4",
        "mmau/1/001.mp4",
        "mmau/2/001.mp4",
    ]
    assert res.summary() == "3 frame folders = 3 encoded + 0 already done + 0 rejected"
    means, stream, (h, w) = _decode(out / "mmau" / "1" / "001.mp4")
    assert len(means) == 15 and (w, h) == (48, 32)
    assert means == sorted(means) and means[-1] - means[0] > 100  # 2.png before 10.png
    assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
    assert stream.average_rate == 10
    assert len(_decode(out / "dota" / "0RJPQ_97dcs_000387.mp4")[0]) == 12
    assert not list(out.rglob("*.tmp"))


def test_rejects_name_the_file(tmp_path):
    src = tmp_path / "src"
    _frames(src / "gap", [1, 2, 3, 5, 6])
    _frames(src / "late", [5, 6, 7])
    _frames(src / "sizes", [0, 1])
    _frames(src / "sizes", [2], size=(64, 32))
    _frames(src / "broken", [0, 1, 2])
    (src / "broken" / "000001.jpg").write_bytes(b"not a jpeg")
    _frames(src / "ok", [0, 1, 2])
    res = frames_to_video(src, tmp_path / "out", FramesConfig(fps=30, workers=2), False)
    assert res.folders == 5 and [Path(p).name for p in res.written] == ["ok.mp4"]
    why = {r.video_id: r.reason for r in res.rejects}
    assert "frame 4 is missing (between 000003.jpg and 000005.jpg)" in why["gap"]
    assert "late/000005.jpg: the frames start at number 5" in why["late"]
    assert "sizes/000002.jpg: 64x32, but the first frame is 48x32" in why["sizes"]
    assert "broken/000001.jpg: not a readable image" in why["broken"]
    assert not (tmp_path / "out" / "broken.mp4").exists()  # nothing half-written is left
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_order_frames_rules():
    folder = Path("f")
    names = ["10.jpg", "9.jpg", "1.jpg", *[f"{i}.jpg" for i in range(2, 9)]]
    assert order_frames(folder, names) == [f"{i}.jpg" for i in range(1, 11)]
    assert order_frames(folder, ["img_2.png", "img_0.png", "img_1.png"])[0] == "img_0.png"
    for names, message in [
        (["1.jpg", "cover.jpg"], "must end in its number"),
        (["a1.jpg", "b2.jpg"], "prefix 'b'"),
        (["1.jpg", "001.jpg"], "frame 1 again"),
        (["0.jpg", "4.jpg"], "frame 1-3 is missing"),
    ]:
        with pytest.raises(FrameError, match=message):
            order_frames(folder, names)


def test_resume_skips_done_videos_and_redoes_changed_ones(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    _layouts(src)
    config = FramesConfig(fps=30)
    frames_to_video(src, out, config, False)
    mp4 = out / "mmau" / "2" / "001.mp4"
    before = {p: p.read_bytes() for p in out.rglob("*.mp4")}
    again = frames_to_video(src, out, config, False)
    assert not again.written and len(again.skipped) == 3
    _frames(src / "mmau" / "2" / "001" / "images", [3], size=(48, 32), name="{:06d}.png")
    (src / "mmau" / "2" / "001" / "images" / "000003.jpg").unlink()  # 3 is now a PNG
    changed = frames_to_video(src, out, config, False)
    assert changed.written == [str(mp4)] and len(changed.skipped) == 2
    assert mp4.read_bytes() != before[mp4]
    other = frames_to_video(src, out, FramesConfig(fps=10), False)  # settings are stamped
    assert len(other.written) == 3


def test_a_killed_runs_half_written_videos_are_removed_by_the_next_run(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    _layouts(src)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = out / "mmau" / "2" / f".001.mp4.{dead}.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half an mp4")
    frames_to_video(src, out, FramesConfig(fps=30), False)
    assert not stale.exists() and (out / "mmau" / "2" / "001.mp4").is_file()


def test_odd_sizes_are_cropped_by_one_pixel(tmp_path):
    _frames(tmp_path / "src" / "odd", range(3), size=(47, 33))
    res = frames_to_video(tmp_path / "src", tmp_path / "out", FramesConfig(fps=10), False)
    assert res.cropped == res.written and "1 cropped" in res.summary()
    assert _decode(tmp_path / "out" / "odd.mp4")[2] == (32, 46)


def _cli(src: Path, out: Path, workers: int) -> None:
    cmd = [sys.executable, "-m", "vlm_autodrive.cli", "frames-to-video", str(src)]
    cmd += ["--out", str(out), "--fps", "30", "--workers", str(workers)]
    subprocess.run(cmd, check=True, capture_output=True)


def test_same_frames_same_bytes_in_fresh_processes(tmp_path):
    _layouts(tmp_path / "src")
    _cli(tmp_path / "src", tmp_path / "a", 2)
    _cli(tmp_path / "src", tmp_path / "b", 1)
    a = sorted((tmp_path / "a").rglob("*.mp4"))
    assert len(a) == 3
    for p in a:
        assert p.read_bytes() == (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes()


def test_cli_exit_codes(tmp_path, capsys):
    _frames(tmp_path / "src" / "gap", [0, 2])
    _frames(tmp_path / "src" / "fine", [0, 1])
    args = ["frames-to-video", str(tmp_path / "src"), "--out", str(tmp_path / "o")]
    assert main([*args, "--fps", "10", "--workers", "1"]) == 3  # done, one folder rejected
    printed = capsys.readouterr().out
    assert "2 frame folders = 1 encoded + 0 already done + 1 rejected" in printed
    assert "rejected 1, by reason" in printed and "frame 1 is missing" in printed
    assert f"gap ({tmp_path / 'src' / 'gap'}):" in printed
    assert (tmp_path / "o" / "rejects.jsonl").read_text().count("\n") == 1
    assert main([*args, "--fps", "0"]) == 2
    assert "fps" in capsys.readouterr().err
    assert main(["frames-to-video", str(tmp_path / "absent"), "--out", "o", "--fps", "1"]) == 2
