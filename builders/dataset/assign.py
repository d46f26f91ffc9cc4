"""Train/test assignment by source video, with a balanced test set.

In: the clip table (clip_id, video_id, label), the class names, and the policy (N clips
per class in test, seed, what to do when a class is short, the largest share of a class
the test may take). Out: an `Assignment`: each clip's side, `train`, `test` or
`held_out`, written to `split/assignment.parquet` so that every split, rule or model
generated, follows the same one (`read_assignment`).

Rules:
- Whole videos are held out: no video has clips on both sides.
- The test set has exactly N clips of each class, drawn with the seed from the held-out
  videos; held-out clips beyond that are `held_out` (in no split), because putting them
  into train would leak their video.
- A class is short when fewer than N clips would leave at least (1 - max_test_fraction)
  of its clips for training. `on_short: error` stops the build naming the class and its
  counts; `take_available` takes what the cap allows and reports it.

Choosing the videos. Videos contribute clips of several classes (an event video has one
event clip and several Normal Driving clips), so the held-out set is filled rarest class
first. For each class, videos are visited in a seeded random order and taken when they
do not overshoot its need nor add clips of a rarer class already filled: the test stays
a random sample of videos while no clip of a rare class is wasted. If that is not enough
(every remaining video would overshoot), the videos wasting the fewest clips are taken,
each wasted clip weighted by its class's scarcity. Surplus Normal Driving clips from the
event videos are the usual (cheap) waste; the summary reports it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from vlm_autodrive.builders.core.files import write_parquet
from vlm_autodrive.builders.core.ranking import seeded_rank
from vlm_autodrive.builders.dataset.rows import rows_to_table

SIDES = ("train", "test", "held_out")
ASSIGNMENT_PATH = Path("split") / "assignment.parquet"


@dataclass(slots=True)
class AssignmentRow:
    """A row of `split/assignment.parquet`: a clip and its side."""

    clip_id: str
    video_id: str
    label: str
    split: str


ASSIGNMENT_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("video_id", pa.string()),
        ("label", pa.string()),
        ("split", pa.string()),
    ]
)


class ShortClassError(ValueError):
    """A class has too few clips for the requested test size (on_short: error)."""


@dataclass
class Assignment:
    """Each clip's side, the counts per class and side, and what the build should say."""

    sides: dict[str, str]
    counts: dict[str, dict[str, int]]
    videos: dict[str, int]
    warnings: list[str] = field(default_factory=list)


def assign_splits(
    clips: Sequence[Mapping[str, Any]],
    classes: Sequence[str],
    *,
    per_class: int,
    seed: int,
    on_short: str = "error",
    max_test_fraction: float = 0.5,
) -> Assignment:
    """Assign every clip to train, test or held_out (see the module docstring).

    `clips` need `clip_id`, `video_id` and `label` (a name in `classes`).
    Raises ShortClassError when a class is short and `on_short` is `error`.
    """
    if on_short not in ("error", "take_available"):
        raise ValueError(f"on_short must be error or take_available, not {on_short!r}")
    avail = Counter(c["label"] for c in clips)
    per_video: dict[str, Counter[str]] = {}
    for c in clips:
        per_video.setdefault(c["video_id"], Counter())[c["label"]] += 1
    class_videos = {k: sum(1 for v in per_video.values() if v[k]) for k in classes}

    limit = {k: min(per_class, math.floor(avail[k] * max_test_fraction)) for k in classes}
    short = [k for k in classes if limit[k] < per_class]
    warnings = []
    if short:
        lines = [
            f"class {k!r}: {avail[k]} clips in {class_videos[k]} videos; a test of "
            f"{per_class} would leave too few for training (at most "
            f"max_test_fraction={max_test_fraction} of a class goes to test: {limit[k]} clips)"
            for k in short
        ]
        if on_short == "error":
            raise ShortClassError(
                "the test split cannot have "
                f"{per_class} clips of every class:\n  "
                + "\n  ".join(lines)
                + "\nset splits.on_short: take_available to build a smaller test for these "
                "classes, or lower splits.test_per_class"
            )
        for k in short:
            if limit[k] == 0:
                warnings.append(f"class {k!r} has no clips for the test split (of {avail[k]})")
            else:
                warnings.append(
                    f"class {k!r}: test has {limit[k]} clips, not {per_class} "
                    f"({avail[k]} clips in {class_videos[k]} videos)"
                )

    held = _hold_out(per_video, classes, avail, dict(limit), seed)
    sides = _draw_test(clips, held, limit, seed)
    counts = {k: dict.fromkeys(SIDES, 0) for k in classes}
    for c in clips:
        counts[c["label"]][sides[c["clip_id"]]] += 1
    videos = {"train": len(per_video) - len(held), "test": len(held)}
    return Assignment(sides, counts, videos, warnings)


def _hold_out(
    per_video: dict[str, Counter[str]],
    classes: Sequence[str],
    avail: Counter[str],
    need: dict[str, int],
    seed: int,
) -> set[str]:
    """The videos whose clips go to the test side (filling `need`, rarest class first)."""
    order = sorted(per_video, key=lambda v: seeded_rank(seed, "video", v))
    total = max(1, sum(avail.values()))
    weight = {k: total / avail[k] if avail[k] else 0.0 for k in classes}
    held: set[str] = set()

    def take(v: str) -> None:
        held.add(v)
        for k, n in per_video[v].items():
            need[k] = need.get(k, 0) - n

    def waste(v: str) -> float:
        return sum(weight[k] * max(0, n - max(need[k], 0)) for k, n in per_video[v].items())

    filled: list[str] = []
    for k in sorted(classes, key=lambda k: (avail[k], classes.index(k))):
        for v in order:
            if need[k] <= 0:
                break
            n = per_video[v][k]
            if v in held or n == 0 or n > need[k]:
                continue
            if any(per_video[v][d] > max(need[d], 0) for d in filled):
                continue
            take(v)
        if need[k] > 0:
            rest = [v for v in order if v not in held and per_video[v][k]]
            rest.sort(key=waste)  # stable: ties keep the seeded order
            for v in rest:
                if need[k] <= 0:
                    break
                take(v)
        filled.append(k)
    return held


def _draw_test(
    clips: Sequence[Mapping[str, Any]], held: set[str], limit: dict[str, int], seed: int
) -> dict[str, str]:
    """`test` for a seeded sample of `limit[k]` held-out clips of each class k, `held_out`
    for the rest of the held-out videos' clips, `train` for every other clip."""
    pools: dict[str, list[str]] = {}
    sides = {}
    for c in clips:
        if c["video_id"] in held:
            pools.setdefault(c["label"], []).append(c["clip_id"])
        else:
            sides[c["clip_id"]] = "train"
    for k, ids in pools.items():
        ids.sort(key=lambda i: seeded_rank(seed, "clip", i))
        for pos, i in enumerate(ids):
            sides[i] = "test" if pos < limit.get(k, 0) else "held_out"
    return sides


def write_assignment(build_dir: Path, clips: Sequence[Mapping[str, Any]], a: Assignment) -> Path:
    """Write `split/assignment.parquet` (sorted by clip id) atomically; return its path."""

    rows = [
        AssignmentRow(c["clip_id"], c["video_id"], c["label"], a.sides[c["clip_id"]])
        for c in sorted(clips, key=lambda c: c["clip_id"])
    ]
    table = rows_to_table(rows, ASSIGNMENT_SCHEMA)
    path = build_dir / ASSIGNMENT_PATH
    write_parquet(table, path)
    return path


def read_assignment(build_dir: Path) -> dict[str, str]:
    """clip_id -> `train`/`test`/`held_out`, as the rule splits stage wrote it.

    Model-generated splits call this so that their rows land on the same side.
    """
    import pyarrow.parquet as pq

    path = build_dir / ASSIGNMENT_PATH
    if not path.exists():
        raise FileNotFoundError(f"{path}: no assignment yet; build the rule splits first")
    t = pq.read_table(path, columns=["clip_id", "split"])
    return dict(zip(t.column("clip_id").to_pylist(), t.column("split").to_pylist(), strict=True))
