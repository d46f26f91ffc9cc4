"""A worker process killed mid-run (the kernel's OOM killer, `kill -9` of one child):
`autodrive chunk --workers 2` and `autodrive ingest --workers 2` print one line,
`error: a worker process died (killed, or out of memory?): ...`, exit 1 (the machine's
error), no traceback (it goes to --log-file); the finished work is kept and the same
command resumes.

The worker really dies: the stage's worker function is replaced by one that sends
SIGKILL to its own process inside the real ProcessPoolExecutor (forked, so the
replacement is what the workers run), which breaks the pool as an OOM kill does.
About 5 s: four 3 s videos of 64x48.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from vlm_autodrive.builders.clips import stage as chunk_stage
from vlm_autodrive.builders.ingest import stage as ingest_stage
from vlm_autodrive.cli import WORKER_DIED, main

REAL_CHUNK_VIDEO = chunk_stage.chunk_video
CHUNK = ["--workers", "2", "--mode", "copy", "--window", "2", "--stride", "1"]


def chunk_video_killed_on_the_first_video(video, config, normal, build_dir):
    """In a pool worker: the first video's worker dies by SIGKILL once another video is
    recorded as done (so there is finished work to keep); the others are cut."""
    if not video.video_id.endswith("0000"):
        return REAL_CHUNK_VIDEO(video, config, normal, build_dir)
    parts = Path(build_dir) / "chunk" / "parts"
    deadline = time.monotonic() + 60
    while not any(parts.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGKILL)


def probe_killed(path):
    """In a pool worker: dies by SIGKILL, as the OOM killer ends a process."""
    os.kill(os.getpid(), signal.SIGKILL)


def run(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("worker-death") / "s"
    args = ["sample", "--videos", "4", "--out", out, "--duration", "3", "--seed", "1"]
    assert main([str(a) for a in [*args, "--width", "64", "--height", "48"]]) == 0
    return out


def test_chunk_with_a_killed_worker_says_so_keeps_the_work_and_resumes(
    sample, tmp_path, capsys, monkeypatch
):
    build, log = tmp_path / "build", tmp_path / "run.log"
    assert run(capsys, "ingest", sample / "manifest.jsonl", "--build", build, "-q")[0] == 0
    ids = sorted(p.stem for p in (sample / "videos").glob("*.mp4"))
    assert ids[0].endswith("0000"), ids

    monkeypatch.setattr(chunk_stage, "chunk_video", chunk_video_killed_on_the_first_video)
    code, _, err = run(capsys, "chunk", "--build", build, *CHUNK, "-q", "--log-file", log)
    assert (code, err) == (1, f"error: {WORKER_DIED}\n")
    assert "BrokenProcessPool" in log.read_text()  # the traceback, for a bug report
    assert "exit code 1" in log.read_text()
    kept = {p: p.stat().st_mtime_ns for p in (build / "chunk" / "parts").glob("*.json")}
    assert kept and build / "chunk" / "parts" / f"{ids[0]}.json" not in kept

    monkeypatch.setattr(chunk_stage, "chunk_video", REAL_CHUNK_VIDEO)
    code, _, err = run(capsys, "chunk", "--build", build, *CHUNK, "-q")
    assert code == 0, err
    assert {p.stem for p in (build / "chunk" / "parts").glob("*.json")} == set(ids)
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # not cut again


def test_ingest_with_a_killed_worker_says_so_and_resumes(sample, tmp_path, capsys, monkeypatch):
    build = tmp_path / "build"
    args = ["ingest", sample / "manifest.jsonl", "--build", build, "--workers", "2", "-q"]
    monkeypatch.setattr(ingest_stage, "_probe_one", probe_killed)
    code, _, err = run(capsys, *args)
    assert (code, err) == (1, f"error: {WORKER_DIED}\n")
    monkeypatch.undo()
    code, _, err = run(capsys, *args)
    assert code == 0, err
    assert (build / "ingest" / "videos.parquet").is_file()
