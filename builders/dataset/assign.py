"""Train/test assignment by source video, with a balanced test set.

In: the clip table (clip_id, video_id, label), the class names, and the policy (N clips
per class in test, seed, what to do when a class is short, the largest share of a class
the test may take). Out: an `Assignment`: each clip's side, `train`, `test` or
`held_out`, written to `split/assignment.parquet` so that every split, rule or model
generated, follows the same one (`read_assignment`).

Rules:
- Whole videos are held out: no video has clips on both sides. Videos of one file
  (byte-identical duplicates kept by `ingest.duplicates: group`) and near-duplicates (a
  re-encoded or resized copy, `ingest.near_duplicates: group`) go together
  (`source_groups.py`).
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

Pinning (`rules.pin_assignment`: a previous release's `split/assignment.parquet`). Old
clips keep their side, so no video ever changes side between versions; a new clip of an
old video goes with its video. New videos are assigned by the rule above to fill what the
test still needs per class (nothing, when the old test is full: they all go to train). A
test that ends up off balance (say the new taxonomy has a class the old test lacks) is
reported per class in the warnings.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from vlm_autodrive.builders.core.files import write_parquet
from vlm_autodrive.builders.core.ranking import seeded_rank

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


# Where test_per_class, max_test_fraction and on_short are explained for users.
README_SECTION = 'docs/own-data/rule-splits.md, "A new class, from a copied templates folder"'


class ShortClassError(ValueError):
    """A class has too few clips for the requested test size (on_short: error)."""


@dataclass
class Assignment:
    """Each clip's side, the counts per class and side, and what the build should say."""

    sides: dict[str, str]
    counts: dict[str, dict[str, int]]
    videos: dict[str, int]
    warnings: list[str] = field(default_factory=list)
    pinned: dict[str, int] | None = None  # with a pinned assignment: old and new videos


def assign_splits(
    clips: Sequence[Mapping[str, Any]],
    classes: Sequence[str],
    *,
    per_class: int,
    seed: int,
    on_short: str = "error",
    max_test_fraction: float = 0.5,
    pinned: Mapping[str, str] | None = None,
    groups: Mapping[str, str] | None = None,
) -> Assignment:
    """Assign every clip to train, test or held_out (see the module docstring).

    `clips` need `clip_id`, `video_id` and `label` (a name in `classes`). `pinned`
    (clip_id -> side, a previous release's assignment) keeps old videos on their side:
    see "Pinning" in the module docstring. `groups` (video_id -> group id, from
    `duplicate_groups`) makes the videos of one group one unit: all on the same side.
    Raises ShortClassError when a class is short and `on_short` is `error`.
    """
    if groups:
        if pinned:
            _refuse_split_groups(clips, pinned, groups)
        grouped = [{**c, "video_id": groups.get(c["video_id"], c["video_id"])} for c in clips]
        a = assign_splits(
            grouped, classes, per_class=per_class, seed=seed, on_short=on_short,
            max_test_fraction=max_test_fraction, pinned=pinned,
        )  # fmt: skip
        held = {c["video_id"] for c in clips if a.sides[c["clip_id"]] != "train"}
        a.videos = {"train": len({c["video_id"] for c in clips}) - len(held), "test": len(held)}
        if a.pinned is not None:  # in videos, not groups: a new video may join an old group
            old = {c["video_id"] for c in clips if c["clip_id"] in pinned}
            new = {c["video_id"] for c in clips} - old
            a.pinned = {
                "old_videos": len(old),
                "new_videos": len(new),
                "new_test_videos": len(new & held),
            }
        return a
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
                + "\nset rules.on_short: take_available to build a smaller test for these "
                "classes, or lower rules.test_per_class (rules.max_test_fraction, "
                f"{max_test_fraction} here, caps the share of a class the test takes; "
                f"see {README_SECTION})"
            )
        for k in short:
            if limit[k] == 0:
                warnings.append(f"class {k!r} has no clips for the test split (of {avail[k]})")
            else:
                warnings.append(
                    f"class {k!r}: test has {limit[k]} clips, not {per_class} "
                    f"({avail[k]} clips in {class_videos[k]} videos)"
                )

    if pinned:
        return _assign_pinned(clips, classes, per_video, avail, limit, seed, pinned, warnings)
    held = _hold_out(per_video, classes, avail, dict(limit), seed)
    sides = _draw_test(clips, held, limit, seed)
    return _result(clips, classes, per_video, held, sides, warnings)


def duplicate_groups(videos: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """video_id -> group id (the group's smallest video id) for the videos that share their
    file's bytes (`sha256`) or their picture (`perceptual_signature` within the audit's
    threshold) with another; videos of their own are left out (they are their own unit).
    `source_groups.source_groups` gives the counts too."""
    from vlm_autodrive.builders.dataset.source_groups import source_groups

    return source_groups(videos).of


def _refuse_split_groups(clips, pinned, groups) -> None:
    """ValueError naming the first group of duplicates that the pinned assignment puts on
    both sides (kept pinned, they would leak; grouped, a video would change side)."""
    sides: dict[str, dict[str, set[str]]] = {}
    for c in clips:
        side = pinned.get(c["clip_id"])
        if side is not None and c["video_id"] in groups:
            group = sides.setdefault(groups[c["video_id"]], {})
            group.setdefault(c["video_id"], set()).add("train" if side == "train" else "test")
    for group in sorted(sides):
        members = sides[group]
        if len(set().union(*members.values())) > 1:
            where = ", ".join(f"{v} in {'/'.join(sorted(s))}" for v, s in sorted(members.items()))
            raise ValueError(
                f"rules.pin_assignment: videos {where} are duplicates (the same file bytes, "
                "or a re-encoded or resized copy) that the pinned release put on both sides: "
                "keeping their sides leaks the test set, moving one changes a pinned side. "
                "Drop one of them from the manifest (ingest.duplicates: reject drops a file "
                "listed twice), or, for a near-duplicate, keep both where they were with "
                "ingest.near_duplicates: off"
            )


def _result(clips, classes, per_video, held, sides, warnings) -> Assignment:
    counts = {k: dict.fromkeys(SIDES, 0) for k in classes}
    for c in clips:
        counts[c["label"]][sides[c["clip_id"]]] += 1
    videos = {"train": len(per_video) - len(held), "test": len(held)}
    return Assignment(sides, counts, videos, warnings)


def _assign_pinned(clips, classes, per_video, avail, limit, seed, pinned, warnings):
    """Old clips keep the side `pinned` gives them (a clip of an old video that is new
    goes with its video: train, or held_out for a held-out video); new videos fill what
    the test still needs by the same seeded rule."""
    old_side: dict[str, str] = {}  # video -> train / held (test or held_out)
    for c in clips:
        side = pinned.get(c["clip_id"])
        if side is not None:
            held_side = "train" if side == "train" else "held"
            if old_side.setdefault(c["video_id"], held_side) != held_side:
                raise ValueError(
                    f"rules.pin_assignment: video {c['video_id']!r} has clips on both sides"
                )
    sides: dict[str, str] = {}
    need = dict(limit)
    for c in clips:
        v = old_side.get(c["video_id"])
        if v is None:
            continue
        side = pinned.get(c["clip_id"]) or ("train" if v == "train" else "held_out")
        sides[c["clip_id"]] = side
        if side == "test":
            need[c["label"]] = need.get(c["label"], 0) - 1
    new_videos = {v: n for v, n in per_video.items() if v not in old_side}
    new_clips = [c for c in clips if c["video_id"] in new_videos]
    need = {k: max(0, n) for k, n in need.items()}
    held_new = _hold_out(new_videos, classes, avail, dict(need), seed)
    sides.update(_draw_test(new_clips, held_new, need, seed))
    held = held_new | {v for v, s in old_side.items() if s == "held" and v in per_video}
    a = _result(clips, classes, per_video, held, sides, warnings)
    off = {k: a.counts[k]["test"] - limit[k] for k in classes if a.counts[k]["test"] != limit[k]}
    if off:
        a.warnings.append(
            "the pinned test set is not class-balanced: "
            + ", ".join(
                f"{k} {a.counts[k]['test']} (wanted {limit[k]}, {d:+d})" for k, d in off.items()
            )
        )
    a.pinned = {
        "old_videos": len(old_side.keys() & per_video.keys()),
        "new_videos": len(new_videos),
        "new_test_videos": len(held_new),
    }
    return a


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

    ordered = sorted(clips, key=lambda c: c["clip_id"])
    # Column by column (the AssignmentRow fields): a record per clip cost 0.1 s at 50,000.
    columns = {n: [c[n] for c in ordered] for n in ("clip_id", "video_id", "label")}
    columns["split"] = [a.sides[c] for c in columns["clip_id"]]
    table = pa.Table.from_pydict(columns, schema=ASSIGNMENT_SCHEMA)
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


PIN_HUB = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)@(?P<tag>v\d+\.\d+\.\d+[\w.-]*)$")


def pinned_assignment_path(spec: str) -> Path:
    """The assignment file `rules.pin_assignment` names: a release or build folder (its
    `split/assignment.parquet`), the file itself, or `ORG/NAME@vX.Y.Z` on the Hub."""
    path = Path(spec)
    if path.is_dir():
        path = path / ASSIGNMENT_PATH
    if path.is_file():
        return path
    hub = PIN_HUB.match(spec)
    if hub is None:
        raise FileNotFoundError(
            f"rules.pin_assignment: {spec} not found (give a release or build folder, its "
            "split/assignment.parquet, or ORG/NAME@vX.Y.Z)"
        )
    from huggingface_hub import hf_hub_download

    return Path(
        hf_hub_download(
            hub["repo"], ASSIGNMENT_PATH.as_posix(), repo_type="dataset", revision=hub["tag"]
        )
    )


def read_pinned(path: Path) -> dict[str, str]:
    """clip_id -> side of a pinned assignment file, checked."""
    import pyarrow.parquet as pq

    try:
        t = pq.read_table(path, columns=["clip_id", "split"])
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"rules.pin_assignment: {path} is not an assignment file ({e})") from None
    out = dict(zip(t.column("clip_id").to_pylist(), t.column("split").to_pylist(), strict=True))
    bad = sorted({s for s in out.values() if s not in SIDES})
    if bad:
        raise ValueError(f"rules.pin_assignment: {path}: unknown sides {bad}")
    return out
