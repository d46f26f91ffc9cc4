"""Real footage shapes through ingest and chunk: odd frame sizes, display rotation, and
event windows planned on the frame grid.

Sources are made with PyAV (`footage.py`); every clip is decoded and checked for what a
user would see: its frames, their order, their orientation.
"""

import pyarrow.parquet as pq
import pytest

from tests.builders.clips.footage import corner, frame_number, make_footage, shown
from tests.conftest import write_jsonl
from vlm_autodrive.builders.clips.plan import label_cuts, plan_cuts
from vlm_autodrive.builders.clips.stage import run_chunk
from vlm_autodrive.builders.clips.windows import Event, Window
from vlm_autodrive.builders.core.sections import ChunkConfig
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.records import VideoRecord
from vlm_autodrive.builders.ingest.stage import run_ingest

TAX = load_taxonomy()


def _ingest(tmp_path, sources: dict):
    """Ingest {video id: path} as Normal Driving videos into tmp_path/build."""
    rows = [{"video_id": k, "path": str(p), "label": "Normal Driving"} for k, p in sources.items()]
    build = tmp_path / "build"
    res = run_ingest(write_jsonl(tmp_path / "m.jsonl", rows), build, TAX, progress=False)
    assert not res.rejects, res.rejects
    return build


@pytest.mark.parametrize("size", [(853, 480), (321, 181)])
@pytest.mark.parametrize("mode", ["reencode", "copy"])
def test_odd_frame_sizes_are_cropped_to_even_never_an_encoder_error(tmp_path, size, mode):
    # VP9 in WebM, as real 853x480 footage comes; copy mode with a long GOP re-encodes
    # the windows a keyframe would stretch too far.
    src = make_footage(tmp_path / "odd.webm", seconds=3, size=size, codec="libvpx-vp9", gop=90)
    build = _ingest(tmp_path, {"odd": src})
    cfg = ChunkConfig(window=1, stride=0.9, margin=0.2, mode=mode, max_copy_stretch=0.5)
    res = run_chunk(build, cfg, TAX, progress=False)
    assert not res.rejects and len(res.clips) == 3
    w, h = size
    for clip in res.clips:
        frames = shown(build / clip.path)
        assert len(frames) == clip.frames == 30
        start = round(clip.start * 30)
        assert [frame_number(f) for f in frames] == list(range(start, start + 30))
        if clip.cut_mode == "reencode":
            assert (frames[0].width, frames[0].height) == (w - w % 2, h - h % 2)
            assert clip.picture == f"cropped {w}x{h} to {w - w % 2}x{h - h % 2}"
        else:
            assert (frames[0].width, frames[0].height) == size and clip.picture == ""
        assert (clip.width, clip.height) == (frames[0].width, frames[0].height)
    assert {c.cut_mode for c in res.clips} == ({"copy", "reencode"} if mode == "copy" else {mode})
    table = pq.read_table(build / "chunk/clips.parquet").to_pylist()
    assert {r["picture"] for r in table} == {c.picture for c in res.clips}


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_sources_give_clips_shown_the_right_way_up_in_every_mode(tmp_path, rotation):
    # 8 s, a keyframe every 2 s: with max_copy_stretch 0.2 copy mode copies the windows
    # at 0 and 6 s and re-encodes those at 1.5, 3 and 4.5 s, mixed within one video.
    src = make_footage(tmp_path / "phone.mp4", seconds=8, gop=60, rotation=rotation)
    source_view = corner(shown(src)[0])  # the mark as a player shows the source
    assert source_view != "tl"  # the flag turns the picture
    build = _ingest(tmp_path, {"phone": src})
    (video,) = [
        VideoRecord.model_validate(r)
        for r in pq.read_table(build / "ingest/videos.parquet").to_pylist()
    ]
    assert video.rotation == rotation
    for mode in ("reencode", "copy"):
        cfg = ChunkConfig(window=2, stride=1.5, margin=0.5, mode=mode, max_copy_stretch=0.2)
        res = run_chunk(build, cfg, TAX, force=True, progress=False)
        modes = [c.cut_mode for c in res.clips]
        assert modes == (
            ["reencode"] * 5
            if mode == "reencode"
            else ["copy", "reencode", "reencode", "reencode", "copy"]
        )
        for clip in res.clips:
            frames = shown(build / clip.path)
            assert all(corner(f) == source_view for f in frames[:: len(frames) - 1])
            flag = round(frames[0].rotation) % 360
            assert flag == clip.rotation == (rotation if clip.cut_mode == "copy" else 0)
            if clip.cut_mode == "reencode":
                assert clip.picture == f"rotated {rotation}"
                turned = rotation in (90, 270)
                assert (clip.width, clip.height) == ((64, 96) if turned else (96, 64))
                assert (frames[0].width, frames[0].height) == (clip.width, clip.height)


def _record(duration: float, fps: float, event_time: float) -> VideoRecord:
    return VideoRecord(
        video_id="v",
        path="v.mp4",
        label="Collision",
        event_time=event_time,
        duration=duration,
        fps=fps,
        frames=round(duration * fps),
        width=96,
        height=64,
        codec="h264",
    )


def test_event_window_is_planned_with_the_length_it_is_cut_to():
    # 6.01 s at 30 fps is cut as 180 frames, 6.0 s: the event at 11.8 s of a 12 s video
    # is held by the 6.0-12.0 s window; planned as 6.01 s long it was rejected.
    cfg = ChunkConfig(window=6.01, stride=5.55, margin=1.3)
    video = _record(12.0, 30.0, 11.8)
    event = Event("Collision", 11.8, 11.8, 11.8)
    plan = plan_cuts(12.0, 30.0, 360, event, cfg)
    assert plan.reject is None and plan.event_window_added
    times = [c.expected for c in plan.cuts]
    assert Window(6.0, 12.0) in times
    labelled = label_cuts(times, event, video, cfg, "Normal Driving", {})
    assert labelled.reject is None and labelled.event_clips == 1


def test_every_window_of_one_length_is_cut_to_the_same_frame_count():
    # Starts at 5.55 s and 11.1 s fall between frames at 29.97 fps: each cut is still
    # round(6.01 * 29.97) = 180 frames long.
    cfg = ChunkConfig(window=6.01, stride=5.55, margin=1.3)
    plan = plan_cuts(40.0, 30000 / 1001, 1199, None, cfg)
    lengths = {round((c.expected.end - c.expected.start) * 30000 / 1001) for c in plan.cuts}
    assert lengths == {180}
