"""`mode: smart`: frame exact like reencode, re-encoding only the frames before the
window's first keyframe (and after the last whole B-frame group), stream-copying the rest.

Every smart clip decodes to the same frames at the same timestamps as the reencode clip
of its window, decodes without an error in the ffmpeg command line, and comes out byte
for byte the same in a second run; windows it cannot join are re-encoded, counted by
reason in the summary."""

import json
import shutil
import subprocess

import imageio_ffmpeg
import pytest

from tests.builders.clips.footage import frame_number, make_footage, shown
from tests.conftest import write_jsonl
from vlm_autodrive.builders.clips.stage import run_chunk
from vlm_autodrive.builders.core.sections import ChunkConfig
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.stage import run_ingest

TAX = load_taxonomy()


def _ingest(tmp_path, **footage):
    src = make_footage(tmp_path / footage.pop("name", "src.mp4"), seconds=8, **footage)
    rows = [{"video_id": "v", "path": str(src), "label": "Collision", "event_time": 4.0}]
    build = tmp_path / "build"
    ing = run_ingest(write_jsonl(tmp_path / "m.jsonl", rows), build, TAX, progress=False)
    assert not ing.rejects, ing.rejects
    return build


def _cut(build, mode, **settings):
    cfg = ChunkConfig(window=2, stride=1.5, margin=0.5, mode=mode, **settings)
    res = run_chunk(build, cfg, TAX, force=True, progress=False)
    assert not res.rejects
    decoded = {
        c.clip_id: [(frame_number(f), f.pts * f.time_base) for f in shown(build / c.path)]
        for c in res.clips
    }
    return res, decoded, json.loads((build / "chunk/summary.json").read_text())


@pytest.mark.parametrize("bframes", [0, 3])
def test_smart_clips_decode_like_reencode_clips(tmp_path, bframes):
    build = _ingest(tmp_path, gop=30, bframes=bframes)
    reencoded, want, _ = _cut(build, "reencode")
    res, got, summary = _cut(build, "smart")
    assert [c.cut_mode for c in res.clips] == ["smart"] * len(res.clips)
    assert summary["smart_fallback"] == {}
    assert got == want  # the same frames at the same times, clip by clip
    rows = [(c.clip_id, c.start, c.end, c.frames, c.label, c.event_offset) for c in res.clips]
    assert rows == [
        (c.clip_id, c.start, c.end, c.frames, c.label, c.event_offset) for c in reencoded.clips
    ]
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    first = {}
    for clip in res.clips:
        path = build / clip.path
        check = [ffmpeg, "-v", "error", "-i", str(path), "-f", "null", "-"]
        assert subprocess.run(check, capture_output=True, text=True).stderr == ""
        first[clip.clip_id] = path.read_bytes()
    shutil.rmtree(build / "chunk")
    shutil.rmtree(build / "clips")
    again, _, _ = _cut(build, "smart")
    assert {c.clip_id: (build / c.path).read_bytes() for c in again.clips} == first


def test_windows_without_a_keyframe_inside_are_reencoded_and_counted(tmp_path):
    build = _ingest(tmp_path, gop=120)  # keyframes at 0 and 4 s; windows of 2 s
    _, want, _ = _cut(build, "reencode")
    res, got, summary = _cut(build, "smart")
    assert got == want
    modes = {c.start: c.cut_mode for c in res.clips}
    assert modes == {0.0: "smart", 1.5: "reencode", 3.0: "smart", 4.5: "reencode", 6.0: "reencode"}
    assert summary["smart_fallback"] == {"no keyframe inside the window": 3}


@pytest.mark.parametrize(
    ("footage", "reason"),
    [
        ({"codec": "libx265"}, "codec hevc (smart joins H.264)"),
        ({"rotation": 90}, "rotated source (re-encoded clips are upright)"),
    ],
)
def test_sources_smart_cannot_join_are_reencoded_with_the_reason(tmp_path, footage, reason):
    build = _ingest(tmp_path, gop=30, **footage)
    _, want, _ = _cut(build, "reencode")
    res, got, summary = _cut(build, "smart")
    assert got == want
    assert {c.cut_mode for c in res.clips} == {"reencode"}
    assert summary["smart_fallback"] == {reason: summary["windows_planned"]}


def test_open_gop_keyframes_are_not_joined(tmp_path):
    # x264's open GOP: the first keyframe is an IDR frame, the later ones are not
    build = _ingest(tmp_path, bframes=2, x264_params="open-gop=1:keyint=30:min-keyint=30")
    _, want, _ = _cut(build, "reencode")
    res, got, summary = _cut(build, "smart")
    assert got == want
    assert [c.cut_mode for c in res.clips] == ["smart"] + ["reencode"] * (len(res.clips) - 1)
    reason = "the keyframe is not an IDR frame (open GOP)"
    assert summary["smart_fallback"] == {reason: summary["windows_planned"] - 1}
