"""Duplicate groups in the train/test assignment: videos of one file are one unit."""

from __future__ import annotations

from vlm_autodrive.builders.dataset.assign import assign_splits, duplicate_groups

CLASSES = ["Collision", "Near-Collision", "Normal Driving"]


def clips_of(videos: int) -> list[dict]:
    """Each video: one event clip (classes in turn) and three Normal Driving clips."""
    out = []
    for i in range(videos):
        vid = f"v{i:03d}"
        labels = [CLASSES[i % 2], *["Normal Driving"] * 3]
        out += [
            {"clip_id": f"{vid}_{j}", "video_id": vid, "label": k} for j, k in enumerate(labels)
        ]
    return out


def sides_of(a, clips) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for c in clips:
        out.setdefault(c["video_id"], set()).add(a.sides[c["clip_id"]] == "train")
    return out


def test_duplicate_groups_names_only_shared_files():
    videos = {"a": {"sha256": "x"}, "b": {"sha256": "x"}, "c": {"sha256": "y"}, "d": {}}
    assert duplicate_groups(videos) == {"a": "a", "b": "a"}


def test_a_group_never_straddles_the_split_and_ungrouped_it_would():
    clips = clips_of(40)
    pairs = [("v000", "v001"), ("v002", "v003"), ("v010", "v011"), ("v020", "v021")]
    groups = {v: a for a, b in pairs for v in (a, b)}
    straddled = 0
    for seed in range(20):
        kw = dict(per_class=6, seed=seed, on_short="take_available")
        plain = sides_of(assign_splits(clips, CLASSES, **kw), clips)
        straddled += sum(plain[a] != plain[b] for a, b in pairs)
        a = assign_splits(clips, CLASSES, groups=groups, **kw)
        grouped = sides_of(a, clips)
        assert all(grouped[x] == grouped[y] for x, y in pairs), seed
        held = sum(1 for s in grouped.values() if s == {False})
        assert a.videos == {"train": 40 - held, "test": held}
    assert straddled  # without groups the same seeds split some pair: the test can fail


def test_pinned_counts_are_videos_when_a_new_video_joins_an_old_group():
    """A new copy of an old held-out video takes its side; the printed counts say one new
    video, held out (they counted groups: '0 new videos')."""
    old = clips_of(40)
    kw = dict(per_class=6, seed=0, on_short="take_available")
    first = assign_splits(old, CLASSES, **kw)
    pinned = {c["clip_id"]: first.sides[c["clip_id"]] for c in old}
    held = next(c["video_id"] for c in old if first.sides[c["clip_id"]] == "test")
    copy = [
        {**c, "clip_id": "new" + c["clip_id"], "video_id": "new"}
        for c in old
        if c["video_id"] == held
    ]
    a = assign_splits(old + copy, CLASSES, pinned=pinned, groups={held: held, "new": held}, **kw)
    assert all(a.sides[c["clip_id"]] != "train" for c in copy)
    assert a.pinned == {"old_videos": 40, "new_videos": 1, "new_test_videos": 1}
