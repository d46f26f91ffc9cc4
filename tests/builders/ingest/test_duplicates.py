"""Byte-identical source files under different ids (issue 22, item 6): ingest hashes every
file; by default a duplicate is rejected naming the id it duplicates; with
`ingest.duplicates: group` both are kept and always land on one side of the split."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq

from tests.builders.real_builds import autodrive, tiny_recipe
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.stage import run_ingest


def with_duplicates(root, capsys):
    """The tiny build's manifest plus `dup` (v0000's file under another id) and `copy`
    (a copy of v0001's file at another path)."""
    recipe = tiny_recipe(root)
    assert autodrive(capsys, "build", recipe)[0] == 0
    manifest = root / "sample" / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    shutil.copy(root / "sample" / rows[1]["path"], root / "sample" / "videos" / "copy.mp4")
    rows.append({**rows[0], "video_id": "dup"})
    rows.append({**rows[1], "video_id": "copy", "path": "videos/copy.mp4"})
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return recipe, manifest, rows


def test_duplicates_are_rejected_naming_the_original(tmp_path, capsys):
    _, manifest, rows = with_duplicates(tmp_path, capsys)
    res = run_ingest(manifest, tmp_path / "build", load_taxonomy(), progress=False)
    reasons = {r.video_id: r.reason for r in res.rejects}
    assert set(reasons) == {"dup", "copy"}
    assert f"duplicate of video {rows[0]['video_id']!r} (line 1)" in reasons["dup"]
    assert f"duplicate of video {rows[1]['video_id']!r} (line 2)" in reasons["copy"]
    assert res.rows == len(res.videos) + len(res.rejects) == 8
    assert all(len(v.sha256) == 64 for v in res.videos)
    code, text = autodrive(capsys, "ingest", manifest, "--build", tmp_path / "build")
    assert code == 3 and "duplicate of video" in text


def test_grouped_duplicates_land_on_one_side(tmp_path, capsys):
    recipe, _, rows = with_duplicates(tmp_path, capsys)
    build = tmp_path / "build"
    pairs = [(rows[0]["video_id"], "dup"), (rows[1]["video_id"], "copy")]
    for seed in range(3):
        code, text = autodrive(
            capsys,
            "build",
            recipe,
            "--set",
            "ingest.duplicates=group",
            "--set",
            f"rules.seed={seed}",
        )
        assert code == 0, text
        t = pq.read_table(build / "split" / "assignment.parquet").to_pylist()
        side = {}
        for row in t:
            side.setdefault(row["video_id"], set()).add(row["split"] == "train")
        for a, b in pairs:
            assert side[a] == side[b] and len(side[a]) == 1, (seed, a, side[a], side[b])
