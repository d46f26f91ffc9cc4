"""Train/test assignment: by source video, N per class in test, short classes."""

from __future__ import annotations

import math
from collections import Counter

import pyarrow.parquet as pq
import pytest

from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.dataset.assign import (
    ShortClassError,
    assign_splits,
    read_assignment,
    write_assignment,
)
from vlm_autodrive.builders.synthetic.tables import write_synthetic_tables

TAX = load_taxonomy()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    build = tmp_path_factory.mktemp("assign")
    write_synthetic_tables(build, 1500, seed=3, normal_fraction=0.05)
    return pq.read_table(build / "chunk" / "clips.parquet").to_pylist()


def sides_of_videos(clips, sides):
    per_video: dict[str, set] = {}
    for c in clips:
        per_video.setdefault(c["video_id"], set()).add(sides[c["clip_id"]])
    return per_video


def test_no_video_on_both_sides_and_n_per_class(clips):
    a = assign_splits(clips, TAX.names, per_class=40, seed=0)
    for vid, sides in sides_of_videos(clips, a.sides).items():
        assert not ("train" in sides and sides & {"test", "held_out"}), vid
    test = Counter(c["label"] for c in clips if a.sides[c["clip_id"]] == "test")
    assert test == dict.fromkeys(TAX.names, 40)
    assert all(a.counts[k]["test"] == 40 for k in TAX.names)
    assert sum(sum(v.values()) for v in a.counts.values()) == len(clips)
    assert a.videos["test"] + a.videos["train"] == len({c["video_id"] for c in clips})
    assert a.warnings == []


def test_rare_class_clips_are_not_wasted(clips):
    a = assign_splits(clips, TAX.names, per_class=40, seed=0)
    # Event videos hold one event clip each, so the held-out set takes exactly 40 of each
    # event class; only surplus Normal Driving clips of those videos are left over.
    assert a.counts["Collision"]["held_out"] == 0
    assert a.counts["Near-Collision"]["held_out"] == 0
    assert a.videos["test"] == 80


def test_deterministic_and_seeded(clips):
    a = assign_splits(clips, TAX.names, per_class=40, seed=0)
    b = assign_splits(list(reversed(clips)), TAX.names, per_class=40, seed=0)
    c = assign_splits(clips, TAX.names, per_class=40, seed=1)
    assert a.sides == b.sides
    assert a.sides != c.sides


def test_short_class_stops_with_a_clear_message(clips):
    n_coll = sum(c["label"] == "Collision" for c in clips)
    with pytest.raises(ShortClassError) as e:
        assign_splits(clips, TAX.names, per_class=n_coll, seed=0)
    msg = str(e.value)
    assert "'Collision'" in msg and f"{n_coll} clips" in msg
    assert "on_short: take_available" in msg and "Normal Driving" not in msg


def test_short_class_take_available(clips):
    n_coll = sum(c["label"] == "Collision" for c in clips)
    a = assign_splits(clips, TAX.names, per_class=n_coll, seed=0, on_short="take_available")
    cap = math.floor(n_coll * 0.5)
    assert a.counts["Collision"]["test"] == cap
    assert a.counts["Collision"]["train"] >= n_coll - cap
    assert a.counts["Near-Collision"]["test"] == n_coll
    assert any("Collision" in w and str(cap) in w for w in a.warnings)
    for sides in sides_of_videos(clips, a.sides).values():
        assert not ("train" in sides and "test" in sides)


def test_empty_class_is_reported(clips):
    names = [*TAX.names, "Sudden Stop"]
    with pytest.raises(ShortClassError, match="'Sudden Stop': 0 clips"):
        assign_splits(clips, names, per_class=10, seed=0)
    a = assign_splits(clips, names, per_class=10, seed=0, on_short="take_available")
    assert a.counts["Sudden Stop"] == {"train": 0, "test": 0, "held_out": 0}
    assert any("'Sudden Stop' has no clips" in w for w in a.warnings)


def test_zero_per_class_puts_everything_in_train(clips):
    a = assign_splits(clips, TAX.names, per_class=0, seed=0)
    assert set(a.sides.values()) == {"train"}


def test_assignment_round_trip(tmp_path, clips):
    a = assign_splits(clips, TAX.names, per_class=10, seed=0)
    path = write_assignment(tmp_path, clips, a)
    assert path == tmp_path / "split" / "assignment.parquet"
    assert read_assignment(tmp_path) == a.sides
    with pytest.raises(FileNotFoundError, match="rule splits"):
        read_assignment(tmp_path / "nowhere")
