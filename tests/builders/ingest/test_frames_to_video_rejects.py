"""frames-to-video run once per MM-AU group into one OUT (as the README does) keeps every
group's rejects in OUT/rejects.jsonl; re-running a group replaces only its own records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vlm_autodrive.builders.core.stage import read_rejects
from vlm_autodrive.cli import main

Image = pytest.importorskip("PIL.Image")


def _frames(folder: Path, numbers) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        Image.fromarray(np.full((32, 48, 3), 20 + 10 * n, np.uint8)).save(folder / f"{n}.jpg")


def _run(group: Path, out: Path) -> int:
    return main(["frames-to-video", str(group), "--out", str(out), "--fps", "30", "--workers", "1"])


def test_each_group_run_keeps_the_other_groups_rejects(tmp_path):
    cap = tmp_path / "CAP"
    for group, kind in (("g1", "1"), ("g2", "2")):  # each group holds its own types
        _frames(cap / group / kind / "001" / "images", [1, 2, 3])
        _frames(cap / group / kind / "002" / "images", [1, 2, 4])  # frame 3 missing
    out = tmp_path / "videos"
    rejects = out / "rejects.jsonl"
    assert _run(cap / "g1", out) == 3
    assert _run(cap / "g2", out) == 3
    got = [(Path(r.source).relative_to(cap).parts[0], r.video_id) for r in read_rejects(rejects)]
    assert got == [("g1", "002"), ("g2", "002")]
    both = rejects.read_bytes()
    assert _run(cap / "g1", out) == 3  # a re-run is idempotent, whatever the order
    assert _run(cap / "g2", out) == 3
    assert rejects.read_bytes() == both
    _frames(cap / "g1" / "1" / "002" / "images", [3])  # fixed: its reject goes
    assert _run(cap / "g1", out) == 0
    assert [Path(r.source).relative_to(cap).parts[0] for r in read_rejects(rejects)] == ["g2"]
