"""Frame sampling (trainer/video.py): fps, frame cap, pixel budget, decode errors."""

from __future__ import annotations

import numpy as np
import pytest

from vlm_autodrive.trainer.video import (
    VideoDecodeError,
    VideoSettings,
    fit_to_budget,
    frame_indices,
    sample_video,
    vision_tokens_upper_bound,
)

from ..conftest import make_video


def test_fit_to_budget_keeps_aspect_in_multiples_of_28():
    assert fit_to_budget(720, 1280, 81920) == (196, 364)
    h, w = fit_to_budget(180, 320, 10**9)  # no upscaling: rounded down to 28s
    assert (h, w) == (168, 308)
    for height, width, budget in [(720, 1280, 12544), (1080, 1920, 200704), (96, 160, 784)]:
        h, w = fit_to_budget(height, width, budget)
        assert h % 28 == 0 and w % 28 == 0 and h * w <= budget
    assert fit_to_budget(10, 10, 784) == (28, 28)  # at least one patch
    with pytest.raises(ValueError, match="below one"):
        fit_to_budget(100, 100, 500)


def test_frame_indices_fps_cap_and_even_count():
    every = VideoSettings(fps=30, max_frames=180, max_pixels=784)
    assert frame_indices(180, 30.0, every) == list(range(180))  # the paper: every frame
    four = frame_indices(180, 30.0, VideoSettings(fps=4, max_frames=180, max_pixels=784))
    assert len(four) == 24 and four[0] == 3 and four[-1] == 176  # mid-interval frames
    capped = frame_indices(180, 30.0, VideoSettings(fps=30, max_frames=7, max_pixels=784))
    assert len(capped) == 6  # a cap of 7 gives 6: whole temporal patches of 2 frames
    assert capped[0] < 30 and capped[-1] > 150  # spread over the clip, not its start
    assert frame_indices(1, 30.0, every) == [0]


def test_vision_token_bound():
    paper = VideoSettings(fps=30, max_frames=180, max_pixels=81920)
    assert vision_tokens_upper_bound(paper) == 90 * 104


def test_sample_video_reads_the_chosen_frames(tmp_path):
    clip = make_video(tmp_path / "c.mp4", seconds=2.0, fps=30, size=(160, 96))
    v = sample_video(clip, VideoSettings(fps=5, max_frames=100, max_pixels=28 * 28 * 12))
    assert v.frames.shape == (10, 56, 112, 3) and v.frames.dtype == np.uint8
    assert v.metadata["frames_indices"] == [3, 9, 15, 21, 27, 33, 39, 45, 51, 57]
    assert v.metadata["fps"] == 30 and v.metadata["total_num_frames"] == 60
    assert v.sampled_fps == pytest.approx(5.0)
    # make_video draws a bar i+1 px wide on frame i: the frames are the chosen ones
    first = sample_video(clip, VideoSettings(fps=30, max_frames=60, max_pixels=10**6))
    widths = (first.frames[:, 10, :, 0] > 100).sum(axis=1)
    assert len(first.frames) == 60 and all(np.diff(widths[:40]) >= 0) and widths[39] > widths[0]


def test_undecodable_clips_raise_the_collators_error(tmp_path):
    s = VideoSettings(fps=2, max_frames=8, max_pixels=784 * 4)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 50)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(make_video(tmp_path / "ok.mp4").read_bytes()[:2000])
    for path in (garbage, truncated, tmp_path / "missing.mp4"):
        with pytest.raises(VideoDecodeError, match=path.name):
            sample_video(path, s)
