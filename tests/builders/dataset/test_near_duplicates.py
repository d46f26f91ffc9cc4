"""Near-duplicate sources (issue 25): a re-encoded, half-size copy of a video under another
id lands on its original's side of the train/test split (`ingest.near_duplicates: group`,
the default), built with `autodrive build` as a user builds; the audit finds the pair on
one side; with `off` nothing is grouped; different synthetic videos are never grouped."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.builders.real_builds import autodrive, tiny_recipe
from vlm_autodrive.builders.audit.calibrate import reencode_copy
from vlm_autodrive.builders.audit.phash import DEFAULT_THRESHOLD, FRAMES
from vlm_autodrive.builders.audit.report import load_report
from vlm_autodrive.builders.core.files import file_sha256
from vlm_autodrive.builders.dataset.assign import assign_splits
from vlm_autodrive.builders.dataset.source_groups import source_groups

CLASSES = ["Collision", "Near-Collision", "Normal Driving"]


def sides(build) -> dict[str, set[str]]:
    """video id -> its clips' sides, `held_out` counted as test (out of train)."""
    out: dict[str, set[str]] = {}
    for r in pq.read_table(build / "split" / "assignment.parquet").to_pylist():
        out.setdefault(r["video_id"], set()).add("train" if r["split"] == "train" else "test")
    return out


def splitting_seed(build, pair) -> int:
    """A seed at which the assignment without grouping puts the pair on both sides (the
    clip table of `build`): the seed at which grouping has something to do."""
    clips = pq.read_table(build / "chunk" / "clips.parquet").to_pylist()
    for seed in range(40):
        a = assign_splits(clips, CLASSES, per_class=1, seed=seed, on_short="take_available")
        side = {c["video_id"]: a.sides[c["clip_id"]] == "train" for c in clips}
        if side[pair[0]] != side[pair[1]]:
            return seed
    raise AssertionError("no seed splits the pair: the test could not fail")


def test_a_reencoded_half_size_copy_is_kept_on_its_originals_side(tmp_path, capsys):
    """4 builds of 7 tiny videos: about 13 s (20 s on 2 busy cores)."""
    recipe = tiny_recipe(tmp_path)
    sample = ["--videos", "6", "--seed", "3", "--duration", "8", "--width", "96", "--height", "64"]
    assert autodrive(capsys, "sample", "--out", tmp_path / "sample", *sample)[0] == 0
    manifest = tmp_path / "sample" / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    original = next(r for r in rows if r["label"] == "Collision")  # a test candidate
    copy = tmp_path / "sample" / "videos" / "copy.mp4"
    reencode_copy(tmp_path / "sample" / original["path"], copy, 48, 32)  # half size
    rows.append({**original, "video_id": "copy", "path": "videos/copy.mp4"})
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pair = (original["video_id"], "copy")
    build = tmp_path / "build"

    code, text = autodrive(capsys, "build", recipe)
    assert code == 0, text
    seed = splitting_seed(build, pair)  # ungrouped, this seed splits them

    code, text = autodrive(capsys, "build", recipe, "--set", f"rules.seed={seed}")
    assert code == 0, text
    side = sides(build)
    assert side[pair[0]] == side[pair[1]] and len(side["copy"]) == 1, side
    assert "kept on one side: 1 near-duplicate group(s) of 2 videos" in text
    summary = json.loads((build / "rule_splits" / "summary.json").read_text())
    # every video signed; only the pair grouped: different synthetic videos are not
    assert summary["assignment"]["duplicates"] == {
        "byte_identical_groups": 0,
        "near_duplicate_groups": 1,
        "near_duplicate_videos": 2,
        "videos_with_signature": 7,
        "videos_without_signature": 0,
    }
    report = load_report(build)
    near = [g for g in report.duplicates if g.kind == "source_near"]
    assert [g.members for g in near] == [sorted(pair)]
    assert report.crossing_groups == []
    assignment = file_sha256(build / "split" / "assignment.parquet")

    # same sources, same assignment bytes (a build from scratch in another folder)
    other = tmp_path / "other"
    code, text = autodrive(
        capsys, "build", recipe, "--set", f"rules.seed={seed}", "--set", f"build_dir={other}"
    )
    assert code == 0, text
    assert file_sha256(other / "split" / "assignment.parquet") == assignment

    # off: no signature recorded, nothing grouped, the pair split as without grouping
    off = ("--set", "ingest.near_duplicates=off", "--set", f"rules.seed={seed}")
    code, text = autodrive(capsys, "build", recipe, *off)
    assert code == 0, text
    assert "near-duplicates not checked" in text
    videos = pq.read_table(build / "ingest" / "videos.parquet").to_pylist()
    assert all(v["perceptual_signature"] is None for v in videos)
    side = sides(build)
    assert side[pair[0]] != side[pair[1]], side
    assert [g.members for g in load_report(build).crossing_groups] == [sorted(pair)]


def unit(rng, frames=FRAMES) -> np.ndarray:
    m = rng.normal(size=(frames, 63))
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def near(sig, rng, noise=0.02) -> np.ndarray:
    m = sig + rng.normal(scale=noise, size=sig.shape)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def as_bytes(m) -> bytes:
    return np.asarray(m, dtype="<f4").ravel().tobytes()


def test_groups_join_chains_of_copies_and_same_bytes_and_nothing_else():
    rng = np.random.default_rng(0)
    a = unit(rng)
    b = near(a, rng)
    c = near(b, rng)
    videos = {
        "a": {"sha256": "1", "perceptual_signature": as_bytes(a)},
        "b": {"sha256": "2", "perceptual_signature": as_bytes(b)},
        "c": {"sha256": "3", "perceptual_signature": as_bytes(c)},
        "e": {"sha256": "4", "perceptual_signature": as_bytes(unit(rng))},
        "f": {"sha256": "4", "perceptual_signature": as_bytes(unit(rng))},  # e's bytes
        "g": {"sha256": "5", "perceptual_signature": None},
        **{f"x{i}": {"sha256": f"x{i}", "perceptual_signature": as_bytes(unit(rng))}
           for i in range(50)},
    }  # fmt: skip
    g = source_groups(videos)
    assert g.of == {"a": "a", "b": "a", "c": "a", "e": "e", "f": "e"}
    assert g.counts() == {
        "byte_identical_groups": 1,
        "near_duplicate_groups": 1,
        "near_duplicate_videos": 3,
        "videos_with_signature": 55,
        "videos_without_signature": 1,
    }
    # the same videos in another order: the same groups
    keys = list(videos)
    random.Random(1).shuffle(keys)
    assert source_groups({k: videos[k] for k in keys}) == g
    # a copy just past the threshold is its own unit
    far = {"a": videos["a"], "z": {"sha256": "9", "perceptual_signature": as_bytes(-a)}}
    assert source_groups(far).of == {}


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_the_grouping_threshold_is_the_audits(noise):
    """What the audit calls a near-duplicate (distance <= DEFAULT_THRESHOLD) is grouped."""
    rng = np.random.default_rng(2)
    a = unit(rng)
    b = near(a, rng, noise)
    dist = 1 - float(np.sum(a * b)) / FRAMES
    videos = {
        "a": {"perceptual_signature": as_bytes(a)},
        "b": {"perceptual_signature": as_bytes(b)},
    }
    assert bool(source_groups(videos).of) == (dist <= DEFAULT_THRESHOLD)


def test_a_pinned_release_with_a_copy_on_each_side_is_refused_naming_both():
    """An older release, pinned, had a copy in train and its original in test: grouping
    now would move a pinned video, keeping them would leak. The build says which."""
    clips = [
        {"clip_id": f"{v}_{i}", "video_id": v, "label": k}
        for v in ("a", "b", "c", "d")
        for i, k in enumerate(["Collision", "Normal Driving"])
    ]
    pinned = {c["clip_id"]: "test" if c["video_id"] in ("a", "c") else "train" for c in clips}
    kw = dict(per_class=1, seed=0, on_short="take_available", pinned=pinned)
    with pytest.raises(ValueError, match=r"videos a in test, b in train are duplicates"):
        assign_splits(clips, CLASSES, groups={"a": "a", "b": "a"}, **kw)
    together = assign_splits(clips, CLASSES, groups={"a": "a", "c": "a"}, **kw)
    assert together.sides == assign_splits(clips, CLASSES, **kw).sides
