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
"""

from __future__ import annotations

from dataclasses import dataclass

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
) -> list[Window]:
    """Windows of `window` seconds every `stride` seconds that fit inside `duration`.

    With `ensure_event_clip`, when no grid window holds the event moment with the
    margin, one window centred on the moment is added, so no event video is lost to
    where the grid happened to fall. Returns windows sorted by start.
    """
    if duration + EPS < window:
        return []
    wins = []
    k = 0
    while k * stride + window <= duration + EPS:
        start = round(k * stride, 6)
        wins.append(Window(start, round(start + window, 6)))
        k += 1
    if (
        event is not None
        and ensure_event_clip
        and not any(holds_event(w, event, margin) for w in wins)
    ):
        start = min(max(event.time - window / 2, 0.0), duration - window)
        extra = Window(round(start, 6), round(start + window, 6))
        if holds_event(extra, event, margin):
            wins.append(extra)
    return sorted(set(wins), key=lambda w: w.start)


def holds_event(clip: Window, event: Event, margin: float) -> bool:
    """True when the event moment lies inside the clip with `margin` on both sides."""
    return clip.start + margin - EPS <= event.time <= clip.end - margin + EPS


def place_window(clip: Window, event: Event, margin: float) -> str:
    """Where a clip sits against the event: `holds`, `before`, `after` or `near`."""
    if holds_event(clip, event, margin):
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
) -> str | None:
    """The label of a clip cut at `clip` times, or None when the rule drops it."""
    if event is None:
        return normal
    where = place_window(clip, event, margin)
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
