"""Rejects grouped by reason: CCD's real annotation file without its videos, as a user
runs it (`autodrive adapt ccd` then `autodrive ingest`), prints a few lines, not 801."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from vlm_autodrive.builders.core.rejects import format_rejects, reason_kind
from vlm_autodrive.builders.core.stage import RejectRecord

AUTODRIVE = Path(sys.executable).parent / "autodrive"
CCD = SHARED_DATA / "ccd_Crash-1500.txt"


def test_reasons_of_one_kind_group_together():
    assert reason_kind("file not found: /data/a/000001.mp4") == "file not found: …"
    assert reason_kind("truncated: 3 of 90 declared frames present") == (
        "truncated: … of … declared frames present"
    )
    assert reason_kind("unknown label 'Sudden Stop' (the taxonomy has ['A', 'B'])") == (
        "unknown label … (the taxonomy has […])"
    )
    rejects = [
        RejectRecord("ingest", "m.jsonl", i, f"v{i}", f"file not found: /d/v{i}.mp4")
        for i in range(1, 6)
    ]
    rejects.append(RejectRecord("ingest", "m.jsonl", 9, "w", "empty file (0 bytes): /d/w.mp4"))
    text = format_rejects(rejects, "b/ingest/rejects.jsonl", examples=2)
    assert text.splitlines() == [
        "  rejected 6, by reason (2 kinds; every one with its line in b/ingest/rejects.jsonl):",
        "    5  file not found: …",
        "         v1 (m.jsonl:1): file not found: /d/v1.mp4",
        "         v2 (m.jsonl:2): file not found: /d/v2.mp4",
        "         ... and 3 more",
        "    1  empty file (… bytes): …",
        "         w (m.jsonl:9): empty file (0 bytes): /d/w.mp4",
    ]


@pytest.mark.skipif(not CCD.exists(), reason="the real CCD annotation file is not here")
def test_ccd_without_videos_prints_grouped_rejects_and_the_rejects_file(tmp_path):
    manifest = tmp_path / "ccd.jsonl"
    run = [str(AUTODRIVE), "adapt", "ccd", str(CCD), "--out", str(manifest)]
    r = subprocess.run([*run, "--video-root", str(tmp_path / "videos")], capture_output=True)
    assert r.returncode == 0, r.stderr
    build = tmp_path / "build"
    r = subprocess.run(
        [str(AUTODRIVE), "ingest", str(manifest), "--build", str(build), "--workers", "1"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 3, r.stderr
    out = r.stdout.splitlines()
    assert "  manifest rows 801 = videos 0 + rejected 801" in out
    rejects = build / "ingest" / "rejects.jsonl"
    assert f"  rejected 801, by reason (1 kind; every one with its line in {rejects}):" in out
    assert "    801  file not found: …" in out
    assert "           ... and 798 more" in out
    assert len(out) < 12  # was 802 lines
    first = json.loads(rejects.read_text().splitlines()[0])
    assert first["line"] == 1 and first["reason"].startswith("file not found:")
    assert rejects.read_text().count("\n") == 801
