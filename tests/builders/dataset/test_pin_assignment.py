"""A pinned assignment: videos of an earlier release keep their side in the next one; new
videos are assigned by the same seeded rule; the changelog counts new videos per side."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from tests.builders.small_builds import rule_build
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.dataset.assign import assign_splits
from vlm_autodrive.builders.recipe import load_recipe
from vlm_autodrive.builders.release.publish import publish
from vlm_autodrive.builders.rules.config import RuleSplitsConfig
from vlm_autodrive.builders.rules.stage import build_rule_splits
from vlm_autodrive.builders.synthetic.tables import write_synthetic_tables


def sides(folder) -> dict[str, str]:
    t = pq.read_table(folder / "split/assignment.parquet").to_pylist()
    return {r["clip_id"]: r["split"] for r in t}


def video_side(folder) -> dict[str, bool]:
    """video -> held out (test or held_out) or not."""
    t = pq.read_table(folder / "split/assignment.parquet").to_pylist()
    return {r["video_id"]: r["split"] != "train" for r in t}


def test_old_videos_never_change_side_and_the_changelog_counts_new_ones(tmp_path):
    build, pub = tmp_path / "build", tmp_path / "pub"
    write_synthetic_tables(build, 30, seed=3, collision_fraction=0.3)
    rule_build(build)
    publish(build, "0.1.0", to=pub)
    v1 = video_side(pub / "v0.1.0")

    # 30 more videos; unpinned, the same rule moves some old videos to the other side
    write_synthetic_tables(build, 60, seed=3, collision_fraction=0.3)
    rule_build(build)
    moved = [v for v, held in video_side(build).items() if v in v1 and v1[v] != held]
    assert moved, "the test needs a case where recomputing moves an old video"

    pinned = RuleSplitsConfig(test_per_class=2, pin_assignment=str(pub / "v0.1.0"))

    summary = build_rule_splits(build, pinned, load_taxonomy(), {})
    now = video_side(build)
    assert all(now[v] == held for v, held in v1.items())
    clip_sides = sides(build)
    assert all(clip_sides[c] == s for c, s in sides(pub / "v0.1.0").items())
    assert summary.assignment["pinned"]["old_videos"] == 30
    assert "pinned assignment: 30 videos kept their side" in summary.format()
    test = {k: c["test"] for k, c in summary.assignment["clips"].items()}
    assert test == {"Collision": 2, "Near-Collision": 2, "Normal Driving": 2}

    publish(build, "0.2.0", to=pub)
    log = json.loads((pub / "v0.2.0/changelog.json").read_text())
    new = {v for v in now if v not in v1}
    assert log["videos"]["moved"] == 0
    assert sum(log["videos"][s] for s in ("train", "test", "held_out")) == len(new) == 30
    assert "New videos: " in (pub / "v0.2.0/README.md").read_text()


def test_an_unbalanced_pinned_test_is_reported():
    clips = [{"clip_id": f"c{i}", "video_id": f"v{i}", "label": "A"} for i in range(8)]
    clips += [{"clip_id": f"d{i}", "video_id": f"w{i}", "label": "B"} for i in range(8)]
    pinned = {"c0": "test", "c1": "test", "c2": "test", "d0": "train"}
    a = assign_splits(clips, ["A", "B"], per_class=2, seed=0, pinned=pinned)
    assert [a.sides[c] for c in ("c0", "c1", "c2", "d0")] == ["test", "test", "test", "train"]
    assert a.counts["A"]["test"] == 3 and a.counts["B"]["test"] == 2
    assert any("not class-balanced: A 3 (wanted 2, +1)" in w for w in a.warnings)


def test_the_recipe_key_is_validated(tmp_path):
    with pytest.raises(ValidationError, match=r"ORG/NAME@vX\.Y\.Z"):
        RuleSplitsConfig(pin_assignment="org/name@latest")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("build_dir: b\nmanifest: m.jsonl\nrules:\n  pin_assignment: org/x@1.0\n")
    with pytest.raises(ValueError, match=r"rules\.pin_assignment"):
        load_recipe(recipe)
