"""AVI sources made the usual way (`ffmpeg -i in.mp4 -c copy out.avi`) probe as the
video they hold; a truncated one is still rejected."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import make_video
from vlm_autodrive.builders.ingest.probe import ProbeError, probe_video

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")


def _stream_copy_to_avi(src: Path, dst: Path) -> Path:
    # the real ffmpeg command line: it keeps the mp4's fine time base (600 ticks a
    # second), so the AVI declares 600 fps and its length in ticks
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(src)]
    subprocess.run([*cmd, "-c", "copy", str(dst)], check=True)
    return dst


@pytest.mark.parametrize("bframes", [0, 2])
def test_stream_copied_avi_probes_as_its_frames(tmp_path, bframes):
    mp4 = make_video(tmp_path / "in.mp4", seconds=3.0, fps=30, bframes=bframes)
    avi = _stream_copy_to_avi(mp4, tmp_path / "out.avi")
    facts = probe_video(avi)
    assert (facts.frames, facts.fps, facts.duration) == (90, 30.0, 3.0)
    assert probe_video(mp4).frames == facts.frames


def test_truncated_stream_copied_avi_is_still_rejected(tmp_path):
    mp4 = make_video(tmp_path / "in.mp4", seconds=3.0, fps=30, gop=10)
    avi = _stream_copy_to_avi(mp4, tmp_path / "out.avi")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(avi.read_bytes()[: avi.stat().st_size * 3 // 10])
    with pytest.raises(ProbeError, match=r"truncated: \d+ of 90 declared frames"):
        probe_video(cut)
