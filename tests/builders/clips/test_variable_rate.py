"""Variable frame rate: phone and dashcam footage that drops frames or jitters is cut by
presentation time onto its nominal 30 fps grid, with duplicated and dropped frames
counted per clip; only a video past max_gap or max_missing is rejected, with numbers."""

import itertools
import random

import pytest

from tests.builders.clips.footage import frame_number, make_footage, shown
from tests.conftest import write_jsonl
from vlm_autodrive.builders.clips.stage import run_chunk
from vlm_autodrive.builders.core.sections import ChunkConfig
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.stage import run_ingest

TAX = load_taxonomy()
GRID = [i / 30 for i in range(600)]  # 20 s at 30 fps


def _chunk(tmp_path, times: list[float], **settings):
    """Ingest a 20 s source showing frames at `times`, chunk it (6 s every 5.5 s)."""
    src = make_footage(tmp_path / "phone.mp4", times=times)
    rows = [{"video_id": "phone", "path": str(src), "label": "Normal Driving"}]
    build = tmp_path / "build"
    ing = run_ingest(write_jsonl(tmp_path / "m.jsonl", rows), build, TAX, progress=False)
    assert not ing.rejects, ing.rejects
    cfg = ChunkConfig(window=6, stride=5.5, **settings)
    return ing.videos[0], run_chunk(build, cfg, TAX, progress=False), build


def _numbers(build, clip) -> list[int]:
    return [frame_number(f) for f in shown(build / clip.path)]


def test_one_dropped_frame_repeats_the_frame_before(tmp_path):
    video, res, build = _chunk(tmp_path, [t for i, t in enumerate(GRID) if i != 300])
    assert (video.fps, video.frames, video.duration) == (30.0, 599, 20.0)
    assert video.missing == pytest.approx(1 / 600, abs=1e-4)
    assert not res.rejects and len(res.clips) == 3
    for clip in res.clips:
        numbers = _numbers(build, clip)
        assert len(numbers) == clip.frames == 180
        first = round(clip.start * 30)
        want = [n if n != 300 else 299 for n in range(first, first + 180)]
        assert want == numbers
        has_gap = first <= 300 < first + 180
        assert (clip.frames_duplicated, clip.frames_dropped) == ((1, 0) if has_gap else (0, 0))


def test_two_percent_dropped_frames_are_accepted_and_counted(tmp_path):
    rnd = random.Random(7)
    kept = [i for i in range(600) if i == 0 or rnd.random() > 0.02]
    video, res, build = _chunk(tmp_path, [GRID[i] for i in kept])
    assert video.fps == 30.0 and 0.01 < video.missing < 0.04
    assert not res.rejects and len(res.clips) == 3
    for clip in res.clips:
        numbers = _numbers(build, clip)
        first = round(clip.start * 30)
        shown_before = [max(k for k in kept if k <= n) for n in range(first, first + 180)]
        assert numbers == shown_before
        repeats = sum(a == b for a, b in itertools.pairwise(shown_before))
        assert clip.frames_duplicated == repeats and clip.frames_dropped == 0


def test_timestamp_jitter_of_6_ms_keeps_every_frame_in_its_place(tmp_path):
    rnd = random.Random(3)
    times = [t + (rnd.uniform(-0.006, 0.006) if i else 0) for i, t in enumerate(GRID)]
    video, res, build = _chunk(tmp_path, times)
    assert video.fps == 30.0 and video.missing == 0 and 4 < video.jitter_ms <= 6.1
    assert not res.rejects and len(res.clips) == 3
    for clip in res.clips:
        first = round(clip.start * 30)
        assert _numbers(build, clip) == list(range(first, first + 180))
        assert (clip.frames_duplicated, clip.frames_dropped) == (0, 0)


def test_two_frames_in_one_slot_show_the_later_one(tmp_path):
    # a burst: frame 100 and a second one 8 ms later (drawing 100 too, by rounding)
    times = sorted([*GRID, 100 / 30 + 0.008])
    _, res, build = _chunk(tmp_path, times)
    (clip,) = [c for c in res.clips if c.start == 0]
    assert (clip.frames_duplicated, clip.frames_dropped) == (0, 1)
    assert _numbers(build, clip) == list(range(180))


def test_a_long_gap_rejects_the_video_naming_the_numbers(tmp_path):
    times = [t for t in GRID if not 8.0 < t < 11.0]  # 3 s without a frame
    _, res, _ = _chunk(tmp_path, times)
    assert not res.clips
    (reject,) = res.rejects
    assert "variable frame rate: a gap of 3 s between two frames" in reject.reason
    assert "max_gap 1 s" in reject.reason


def test_too_many_missing_frames_reject_the_video_naming_the_share(tmp_path):
    times = [t for i, t in enumerate(GRID) if i % 10 != 5]  # 10% missing, no long gap
    _, res, _ = _chunk(tmp_path, times, max_missing=0.05)
    (reject,) = res.rejects
    assert "10.0% of the frames of its nominal 30 fps grid are missing" in reject.reason
    assert "max_missing 5.0%" in reject.reason
