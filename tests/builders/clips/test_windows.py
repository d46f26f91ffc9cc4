"""The window planner and the labelling rule at window edges."""

import itertools

import pytest

from vlm_autodrive.builders.clips.windows import (
    Event,
    Window,
    edge_margins,
    event_offset,
    event_window,
    holds_event,
    label_window,
    plan_windows,
)

N = "Normal Driving"


def test_paper_grid_gives_seven_overlapping_clips_for_40s():
    wins = plan_windows(40.0, 6.0, 5.5)
    assert len(wins) == 7
    assert wins[0] == Window(0.0, 6.0) and wins[-1] == Window(33.0, 39.0)
    assert all(b.start < a.end for a, b in itertools.pairwise(wins))  # overlapping


def test_too_short_video_is_one_whole_window_or_none():
    assert plan_windows(5.0, 6.0, 5.5) == [Window(0.0, 5.0)]  # a CCD clip
    assert plan_windows(5.9, 6.0, 5.5, short_videos="reject") == []
    assert plan_windows(6.0, 6.0, 5.5) == [Window(0.0, 6.0)]
    ev = Event("Collision", 3.0, 3.5, 4.0)
    assert label_window(Window(0.0, 5.0), ev, N, 1.0, duration=5.0) == "Collision"
    late = Event("Collision", 4.8, 4.8, 4.8)  # 0.2 s before the end of the whole clip
    assert label_window(Window(0.0, 5.0), late, N, 1.0, duration=5.0) == "Collision"


@pytest.mark.parametrize("moment", [0.0, 0.4, 11.8, 12.0])
def test_event_at_the_edge_gets_a_window_shifted_inside(moment):
    ev = Event("Collision", moment, moment, moment)
    wins = plan_windows(12.0, 4.0, 3.5, ev, margin=1.0)
    holding = [w for w in wins if label_window(w, ev, N, 1.0, duration=12.0) == "Collision"]
    assert len(holding) == 1
    assert holding[0] == (Window(0.0, 4.0) if moment < 6 else Window(8.0, 12.0))
    # the margin is what the video allows: without the duration, the clip is ambiguous
    assert label_window(holding[0], ev, N, 1.0) is None
    assert edge_margins(moment, 12.0, 1.0) == (min(1.0, moment), min(1.0, 12.0 - moment))


def test_event_window_lies_on_the_frame_grid():
    ev = Event("Collision", 5.02, 5.02, 5.02)
    w = event_window(ev, 20.0, 3.0, 0.5, fps=15)
    assert w is not None and holds_event(w, ev, 0.5, 20.0)
    assert abs(w.start * 15 - round(w.start * 15)) < 1e-4
    assert round((w.end - w.start) * 15) == 45
    # a window of exactly twice the margin cannot hold a moment between two frames
    assert event_window(Event("Collision", 5.02, 5.02, 5.02), 20.0, 1.0, 0.5, fps=15) is None


def test_event_between_grid_windows_gets_a_centred_window():
    ev = Event("Collision", 10.5, 11.0, 11.5)  # grid holds it with 1 s margin? [5.5,11.5] no
    wins = plan_windows(40.0, 6.0, 5.5, ev, margin=1.0)
    holding = [w for w in wins if label_window(w, ev, N, 1.0) == "Collision"]
    assert holding == [Window(8.0, 14.0)]
    assert len(plan_windows(40.0, 6.0, 5.5, ev, 1.0, ensure_event_clip=False)) == 7


def test_centred_window_is_clamped_inside_the_video():
    ev = Event("Collision", 0.5, 1.2, 2.0)
    wins = plan_windows(20.0, 6.0, 5.5, ev, margin=1.0)
    assert Window(0.0, 6.0) in wins and all(w.start >= 0 for w in wins)


@pytest.mark.parametrize(
    ("clip", "expected"),
    [
        (Window(4.0, 10.0), "Collision"),  # moment 8 s, 2 s either side
        (Window(7.0, 13.0), "Collision"),  # exactly 1 s of margin before the moment
        (Window(3.0, 9.0), "Collision"),  # exactly 1 s after
        (Window(7.01, 13.01), None),  # 0.99 s: ambiguous, dropped
        (Window(0.0, 6.0), N),  # ends exactly `margin` before event_start (7 s)
        (Window(0.5, 6.5), None),  # ends 0.5 s before the event starts: too close
        (Window(9.5, 15.5), N),  # starts exactly margin after event_end (8.5 s)
        (Window(8.6, 14.6), None),  # starts after the event, within the margin
    ],
)
def test_labelling_rule_at_window_edges(clip, expected):
    ev = Event("Collision", 7.0, 8.0, 8.5)
    assert label_window(clip, ev, N, margin=1.0) == expected


def test_a_clip_that_shows_the_event_is_never_normal():
    ev = Event("Near-Collision", 7.0, 8.0, 8.5)
    for start10 in range(0, 200):
        clip = Window(start10 / 10, start10 / 10 + 6)
        shows = clip.start < ev.end and clip.end > ev.start
        for amb in ("drop", "event"):
            for post in ("normal", "drop"):
                label = label_window(clip, ev, N, 1.0, amb, post)
                if shows:
                    assert label != N, (clip, amb, post)


def test_policies():
    ev = Event("Collision", 7.0, 8.0, 8.5)
    near = Window(7.5, 13.5)
    assert label_window(near, ev, N, 1.0, ambiguous="event") == "Collision"
    after = Window(12.0, 18.0)
    assert label_window(after, ev, N, 1.0, post_event="drop") is None
    assert label_window(after, ev, N, 1.0, post_event="normal") == N
    assert label_window(after, None, N, 1.0) == N


def test_event_offset():
    ev = Event("Collision", 7.0, 8.0, 8.5)
    assert event_offset(Window(4.0, 10.0), ev) == 4.0
    assert event_offset(Window(9.0, 15.0), ev) is None
    assert event_offset(Window(4.0, 10.0), None) is None
