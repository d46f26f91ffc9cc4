"""Sliding-window planning and the labelling rule, as pure functions of times in seconds.

The rule, applied to the times a clip was actually cut at (see ChunkConfig):
- a clip *holds the event* when the event moment lies inside it with at least `margin`
  seconds of context on both sides: it gets the event's label;
- a clip ends at least `margin` before the event starts: Normal Driving;
- a clip starts at least `margin` after the event ends: Normal Driving, or dropped
  when `post_event: drop` (aftermath footage is not ordinary driving for every user);
- anything else overlaps the event or sits within the margin of it without holding
  the moment: *ambiguous*, dropped (`ambiguous: drop`) or given the event's label
  (`ambiguous: event`). A clip that shows any part of the event is never Normal.

At the video's edges the margin is what the video allows: an event 0.4 s after the
start (or before the end) is held by a clip starting at 0 (ending at the end) with 0.4 s
of context on that side (`edge_margins`). A video shorter than the window is one clip,
the whole video (`short_videos: whole`), labelled by the same rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

# Times come from frame counts divided by frame rates; compare with a tolerance
# well under one frame (1 ms) so that a window edge exactly on a frame is stable.
EPS = 1e-3


@dataclass(frozen=True)
class Window:
    """A planned clip, in seconds of the source video."""

    start: float
    end: float


@dataclass(frozen=True)
class Event:
    """The labelled event of a source video: its bounds and key moment, in seconds."""

    label: str
    start: float
    time: float
    end: float


def plan_windows(
    duration: float,
    window: float,
    stride: float,
    event: Event | None = None,
    margin: float = 0.0,
    ensure_event_clip: bool = True,
    short_videos: str = "whole",
    fps: float | Fraction | None = None,
) -> list[Window]:
    """Windows of `window` seconds every `stride` seconds that fit inside `duration`.

    A video shorter than one window gets one window, the whole video, with
    `short_videos: whole`, and none with `reject`. With `ensure_event_clip`, when no
    window holds the event moment (margins capped at the video's edges), the
    `event_window` is added, so no event video is lost to where the grid happened to
    fall. These are planned times; the chunk stage checks the times actually cut.
    Returns windows sorted by start.
    """
    if duration + EPS < window:
        return [Window(0.0, round(duration, 6))] if short_videos == "whole" else []
    wins = []
    k = 0
    while k * stride + window <= duration + EPS:
        start = round(k * stride, 6)
        wins.append(Window(start, round(start + window, 6)))
        k += 1
    if (
        event is not None
        and ensure_event_clip
        and not any(holds_event(w, event, margin, duration) for w in wins)
    ):
        extra = event_window(event, duration, window, margin, fps)
        if extra is not None:
            wins.append(extra)
    return sorted(set(wins), key=lambda w: w.start)


def frame_span(w: Window, rate: Fraction, frames: int | None = None) -> tuple[int, int]:
    """The frames [first, end) a frame-exact cut of `w` covers at `rate`: the frame at
    its start and as many whole frames as the window is long (at most `frames`).

    The length is counted once, in frames, so every window of one length is cut to the
    same number of frames wherever its start falls between two frames (a 6.01 s window
    at 30 fps is 180 frames, 6.0 s, at every start).
    """
    first = round(w.start * rate)
    end = first + round((w.end - w.start) * rate)
    return first, end if frames is None else min(end, frames)


def edge_margins(moment: float, duration: float, margin: float) -> tuple[float, float]:
    """The context a clip can keep before and after `moment`: `margin`, or less where
    the video starts or ends closer to the moment than that."""
    return min(margin, max(moment, 0.0)), min(margin, max(duration - moment, 0.0))


def event_starts(
    event: Event, duration: float, window: float, margin: float
) -> tuple[float, float]:
    """(earliest, latest) start of a `window`-long clip inside the video that holds the
    event moment with the edge-capped margins; earliest > latest when none can."""
    before, after = edge_margins(event.time, duration, margin)
    return max(event.time + after - window, 0.0), min(event.time - before, duration - window)


def event_window(
    event: Event,
    duration: float,
    window: float,
    margin: float,
    fps: float | Fraction | None = None,
    prefer: float | None = None,
) -> Window | None:
    """The window for the event: starting at `prefer` (default: centred on the moment),
    shifted to lie inside the video and to hold the moment with the edge-capped margins.

    With `fps`, start and end lie on the frame grid, so a frame-exact cut covers exactly
    these times. None when no such window exists (a window of exactly twice the margin
    with the moment between two frames).
    """
    if fps:  # the window as cut: whole frames (6.01 s at 30 fps is 180 frames, 6.0 s)
        window = float(round(window * Fraction(fps)) / Fraction(fps))
    lo, hi = event_starts(event, duration, window, margin)
    start = event.time - window / 2 if prefer is None else prefer
    start = min(max(start, lo), hi)
    end = start + window
    if fps:
        rate = Fraction(fps)
        n = round(window * rate)
        last = math.floor(duration * rate + EPS) - n
        k = min(max(round(start * rate), math.ceil(lo * rate - EPS)), math.floor(hi * rate + EPS))
        k = min(max(k, 0), last)
        start, end = float(k / rate), float((k + n) / rate)
    clip = Window(round(start, 6), round(end, 6))
    return clip if holds_event(clip, event, margin, duration) else None


def holds_event(clip: Window, event: Event, margin: float, duration: float | None = None) -> bool:
    """True when the event moment lies inside the clip with `margin` on both sides
    (with `duration`, capped where the video starts or ends closer to the moment)."""
    before, after = (
        (margin, margin) if duration is None else edge_margins(event.time, duration, margin)
    )
    return clip.start + before - EPS <= event.time <= clip.end - after + EPS


def place_window(clip: Window, event: Event, margin: float, duration: float | None = None) -> str:
    """Where a clip sits against the event: `holds`, `before`, `after` or `near`."""
    if holds_event(clip, event, margin, duration):
        return "holds"
    if clip.end <= event.start - margin + EPS:
        return "before"
    if clip.start >= event.end + margin - EPS:
        return "after"
    return "near"


def label_window(
    clip: Window,
    event: Event | None,
    normal: str,
    margin: float,
    ambiguous: str = "drop",
    post_event: str = "normal",
    duration: float | None = None,
) -> str | None:
    """The label of a clip cut at `clip` times, or None when the rule drops it
    (`duration`: the video's, for the margins at its edges)."""
    if event is None:
        return normal
    where = place_window(clip, event, margin, duration)
    if where == "holds":
        return event.label
    if where == "before" or (where == "after" and post_event == "normal"):
        return normal
    if where == "near" and ambiguous == "event":
        return event.label
    return None


def event_offset(clip: Window, event: Event | None) -> float | None:
    """Seconds from the clip start to the event moment, or None when outside the clip."""
    if event is None or not clip.start - EPS <= event.time <= clip.end + EPS:
        return None
    return round(event.time - clip.start, 6)
