"""Chunking is deterministic: the same ingest gives the same clip bytes and the same clip
table in every run, in both cut modes.

The runs are fresh processes with 2 workers each, and the second runs with glibc's
MALLOC_PERTURB_ set, so memory that the encoder reads without writing it first holds
other bytes than in the first run: a clip that depends on it differs every time, not
now and then. (x264's AVX-512 macroblock tree did so when a frame is not a multiple of 8
macroblocks wide, as the 160-pixel-wide videos here are; see `cutting.py`.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.stage import run_ingest
from vlm_autodrive.builders.synthetic.sample import generate_sample

TAX = load_taxonomy()


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    """An ingested build of 4 synthetic 10 s videos at 160x96 (10 macroblocks wide)."""
    root = tmp_path_factory.mktemp("determinism")
    manifest = generate_sample(root / "sample", 4, seed=5, duration=10.0, width=160, height=96)
    build = root / "ingested"
    run_ingest(manifest, build, TAX, progress=False)
    return build


def _chunk(ingested: Path, build: Path, mode: str, env: dict[str, str] | None = None) -> dict:
    """Run `autodrive chunk` on a copy of the ingested build in a fresh process, 2 workers;
    return every output file's bytes by its path in the build."""
    shutil.copytree(ingested, build)
    cmd = [sys.executable, "-m", "vlm_autodrive.cli", "chunk", "--build", str(build)]
    cmd += ["--mode", mode, "--workers", "2", "--window", "4", "--stride", "2"]
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, **(env or {})})
    files = sorted([*(build / "clips").rglob("*.mp4"), *(build / "chunk").rglob("*.*")])
    return {f.relative_to(build).as_posix(): f.read_bytes() for f in files}


@pytest.mark.parametrize("mode", ["reencode", "copy"])
def test_two_runs_give_the_same_clip_bytes_and_table(ingested, tmp_path, mode):
    first = _chunk(ingested, tmp_path / "a", mode)
    again = _chunk(ingested, tmp_path / "b", mode, {"MALLOC_PERTURB_": "170"})
    clips = [p for p in first if p.endswith(".mp4")]
    assert len(clips) >= 8 and "chunk/clips.parquet" in first
    assert first.keys() == again.keys()
    differ = [p for p in first if first[p] != again[p]]
    assert not differ, f"{len(differ)} of {len(first)} files differ: {differ[:5]}"
