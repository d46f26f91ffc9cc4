"""Which windows one video gets and how each is cut, judged on the times a cut covers.

In: one ingested video's facts (duration, frame rate, frame count, event), the
`ChunkConfig` and, in copy mode, the source's `CopyIndex`. Out: a `CutPlan`: each window
with its cut mode and the times that cut will cover (`expected`), the windows not cut
(counted by reason), or the reason the video cannot be used.

The times a cut covers are known before cutting: a frame-exact cut snaps to the frame
grid, a stream copy starts at the keyframe at or before the window (`CopyIndex.span`).
The event check runs on those, never on the planned times:

- the grid windows (`plan_windows`), or the whole video when it is shorter than one
  window (`short_videos: whole`; `reject` rejects it);
- copy mode: a window that a keyframe stretches by more than `max_copy_stretch` seconds
  is re-encoded frame exact, or not cut (`stretched: reject`, dropped `copy_stretch`);
- when no window as it will be cut holds the event (`ensure_event_clip`), the event
  window is added: centred on the moment and shifted to lie inside the video with the
  margins the video allows, on the frame grid (reencode), or starting at a keyframe
  (copy; else as little stretched as it can be);
- an event that no window can hold is a reject of the video, with the reason.

`label_cuts` then labels the cuts by the times they cover, keeps one event clip and
checks that an event video has one: the cutter runs it on the times as cut, the dry run
(`preview.py`) on the times the plan says a cut will cover.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction

from vlm_autodrive.builders.clips.cutting import CopyIndex
from vlm_autodrive.builders.clips.windows import (
    EPS,
    Event,
    Window,
    event_starts,
    event_window,
    frame_span,
    holds_event,
    label_window,
    place_window,
    plan_windows,
)
from vlm_autodrive.builders.core.sections import ChunkConfig
from vlm_autodrive.builders.ingest.records import VideoRecord


@dataclass(frozen=True)
class PlannedCut:
    """One window to cut: as planned, how (`copy` or `reencode`), the times it covers."""

    window: Window
    mode: str
    expected: Window


@dataclass
class CutPlan:
    """One video's windows to cut, or why it has none."""

    cuts: list[PlannedCut] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # windows not cut, by reason
    reencoded_stretched: int = 0  # copy mode: windows re-encoded past max_copy_stretch
    event_window_added: bool = False
    whole: bool = False  # the video is shorter than a window: one clip of all of it
    reject: str | None = None

    @property
    def windows(self) -> int:
        """Windows planned: those cut and those not cut."""
        return len(self.cuts) + sum(self.dropped.values())


def frame_rate(fps: float) -> Fraction:
    """The exact frame rate behind a probed float rate (29.97... -> 30000/1001)."""
    return Fraction(fps).limit_denominator(1001)


def on_frame_grid(w: Window, rate: Fraction, frames: int) -> Window:
    """The times a frame-exact cut of `w` covers (whole frames, inside the video)."""
    start, end = frame_span(w, rate, frames)
    return Window(round(float(start / rate), 6), round(float(end / rate), 6))


def plan_cuts(
    duration: float,
    fps: float,
    frames: int,
    event: Event | None,
    config: ChunkConfig,
    index: CopyIndex | None = None,
    timing: tuple[float, float] = (0.0, 0.0),
) -> CutPlan:
    """The windows of one video and how each is cut (`index`: needed in copy mode).

    `frames`: the video's frames; a variable-rate video is cut on its nominal grid,
    `duration * fps` slots, which may be more than the frames it holds. `timing`: the
    video's longest gap between frames (seconds) and share of the grid missing, as
    ingest measured them; past `max_gap` or `max_missing` the video is rejected.
    """
    problem = timing_problem(*timing, fps, config)
    if problem:
        return CutPlan(reject=problem)
    rate = frame_rate(fps)
    frames = max(frames, round(duration * rate))
    grid = plan_windows(duration, config.window, config.stride, short_videos=config.short_videos)
    plan = CutPlan(whole=duration + EPS < config.window)
    if not grid:
        plan.reject = (
            f"shorter ({duration:g} s) than one window ({config.window:g} s) "
            "and short_videos is reject"
        )
        return plan
    dropped: Counter[str] = Counter()
    for w in grid:
        cut = _cut(w, config, rate, frames, index)
        if cut is None:
            dropped["copy_stretch"] += 1
            continue
        plan.reencoded_stretched += cut.mode != config.mode
        plan.cuts.append(cut)
    plan.dropped = dict(dropped)
    if (
        event is None
        or not config.ensure_event_clip
        or any(holds_event(c.expected, event, config.margin, duration) for c in plan.cuts)
    ):
        return plan
    extra, problem = _event_cut(duration, rate, frames, event, config, index)
    if problem:
        return CutPlan(reject=problem, whole=plan.whole)
    plan.event_window_added = True
    plan.reencoded_stretched += extra.mode != config.mode
    same = [
        c for c in plan.cuts if round(c.window.start * 1000) == round(extra.window.start * 1000)
    ]
    if same:  # one clip id per planned start: the event window replaces the grid one
        plan.cuts.remove(same[0])
        plan.reencoded_stretched -= same[0].mode != config.mode
    plan.cuts = sorted([*plan.cuts, extra], key=lambda c: c.window.start)
    return plan


def timing_problem(max_gap: float, missing: float, fps: float, config: ChunkConfig) -> str | None:
    """Why a variable-frame-rate video cannot be cut on its nominal grid, or None."""
    if max_gap > config.max_gap + EPS:
        return (
            f"variable frame rate: a gap of {max_gap:.3g} s between two frames, longer than "
            f"max_gap {config.max_gap:g} s"
        )
    if missing > config.max_missing:
        return (
            f"variable frame rate: {missing:.1%} of the frames of its nominal {fps:g} fps "
            f"grid are missing, more than max_missing {config.max_missing:.1%}"
        )
    return None


def _cut(
    w: Window, config: ChunkConfig, rate: Fraction, frames: int, index: CopyIndex | None
) -> PlannedCut | None:
    """How `w` is cut; None when copy mode may not stretch it that far and
    `stretched` is reject."""
    if config.mode in ("reencode", "smart"):  # both frame exact
        return PlannedCut(w, config.mode, on_frame_grid(w, rate, frames))
    assert index is not None, "copy mode plans from the source's packet index"
    span = index.span(w)
    if w.start - span.start <= config.max_copy_stretch + EPS:
        return PlannedCut(w, "copy", span)
    if config.stretched == "reencode":
        return PlannedCut(w, "reencode", on_frame_grid(w, rate, frames))
    return None


def _event_cut(
    duration: float,
    rate: Fraction,
    frames: int,
    event: Event,
    config: ChunkConfig,
    index: CopyIndex | None,
) -> tuple[PlannedCut, None] | tuple[None, str]:
    """The added window holding the event and how it is cut, or why there is none."""
    window, margin = config.window, config.margin
    prefer = None  # centred
    if config.mode == "copy":
        assert index is not None
        lo, hi = event_starts(event, duration, window, margin)
        keys = [k for k in index.keyframes() if lo - EPS <= k <= hi + EPS]
        centre = event.time - window / 2
        prefer = min(keys, key=lambda k: abs(k - centre)) if keys else lo
    w = event_window(event, duration, window, margin, rate, prefer)
    if w is None:
        return None, (
            f"no {window:g} s window on the frame grid ({float(rate):g} fps) holds the "
            f"event at {event.time:g} s with {margin:g} s of margin"
        )
    cut = _cut(w, config, rate, frames, index)
    if cut is None:
        assert index is not None
        stretch = w.start - index.span(w).start
        return None, (
            f"the event at {event.time:g} s: its window {w.start:g}-{w.end:g} s would "
            f"start {stretch:.2f} s earlier at a keyframe, past max_copy_stretch "
            f"{config.max_copy_stretch:g} s (stretched: reject)"
        )
    return cut, None


@dataclass
class Labelled:
    """One video's cuts as the labelling rule judges them: `kept` (index into the cuts,
    label), the windows dropped by reason, the event clips kept, or a reject."""

    kept: list[tuple[int, str]]
    dropped: Counter
    event_clips: int = 0
    reject: str | None = None


def label_cuts(
    times: list[Window],
    event: Event | None,
    video: VideoRecord,
    config: ChunkConfig,
    normal: str,
    dropped: Counter,
) -> Labelled:
    """Label the cuts covering `times` (sorted by planned start), keep one event clip
    (`event_clips: one`) and check that an event video has one. Shared by the cutter (on
    the times as cut) and the dry run (on the times the plan says a cut will cover)."""
    dropped = Counter(dropped)
    kept: list[tuple[int, str]] = []
    holders: list[tuple[float, int]] = []  # (distance of the event from the centre, index)
    for i, actual in enumerate(times):
        args = (actual, event, normal, config.margin, config.ambiguous, config.post_event)
        label = label_window(*args, duration=video.duration)
        where = event and place_window(actual, event, config.margin, video.duration)
        if label is None:
            dropped["post_event" if where == "after" else "ambiguous"] += 1
            continue
        if where == "holds":
            holders.append((abs(actual.start + actual.end - 2 * event.time), len(kept)))
        kept.append((i, label))
    event_clips = len(holders)
    if config.event_clips == "one" and len(holders) > 1:
        # One event clip a video: the window with the event nearest its centre.
        extra = {j for _, j in sorted(holders)[1:]}
        kept = [k for j, k in enumerate(kept) if j not in extra]
        dropped["event_duplicate"] += len(extra)
        event_clips = 1
    if event is not None and config.ensure_event_clip and not event_clips:
        return Labelled(
            [],
            dropped,
            reject=f"no clip as cut holds the event at {event.time:g} s with the margin "
            f"({config.margin:g} s, less at the video's edges); clips as cut: "
            + ", ".join(f"{t.start:g}-{t.end:g} s" for t in times),
        )
    return Labelled(kept, dropped, event_clips)
