"""`autodrive ingest --workers 2`, hit by SIGKILL and SIGTERM while its worker processes
probe the videos: the run stops as a user expects, no worker stays, nothing of the stage
is written as done, the lock is free, and the same command then finishes with the same
bytes as an uninterrupted run, every manifest row counted once (videos + rejects).

24 synthetic videos of 10 s at 320x192 (the probe and signature passes last ~2 s on 2
busy cores): about 30 s for the module on 2 cores busy with other work (load 8)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from tests.faults.harness import (
    SIGNALS,
    Hurt,
    autodrive_env,
    check_stopped,
    digest,
    hurt,
    leftovers,
    lock_is_free,
    run,
)

VIDEOS = 24
INGEST = ["--workers", "2"]
TAG = "AUTODRIVE_FAULT_INGEST_RUN"  # finds this run's processes, workers included


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """A manifest of synthetic videos, and a clean ingest's digest beside it."""
    root = tmp_path_factory.mktemp("ingest-faults")
    args = ["sample", "--videos", VIDEOS, "--duration", 10, "--width", 320, "--height", 192]
    made = run([*args, "--fps", 15, "--out", root / "s"])
    assert made.returncode == 0, made.stderr
    return root / "s" / "manifest.jsonl"


@pytest.fixture(scope="module")
def clean(sample, tmp_path_factory) -> dict[str, str]:
    build = tmp_path_factory.mktemp("clean") / "build"
    done = run(["ingest", sample, "--build", build, *INGEST])
    assert done.returncode == 0, done.stderr
    return digest(build)


def probing(tag: str, processes: int = 3):
    """A moment: the run, its watchdog (builders/core/children.py) and a pool worker are
    there (the pool lives only while videos are probed and signed). Scans at most every
    50 ms."""
    last = [0.0]

    def when() -> bool:
        if time.monotonic() - last[0] < 0.05:
            return False
        last[0] = time.monotonic()
        found = 0
        for p in psutil.process_iter():
            try:
                found += p.environ().get(TAG) == tag
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found >= processes

    return when


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_ingest_survives_a_signal_mid_probe(sample, clean, tmp_path, sig):
    build = tmp_path / "build"
    tag = uuid.uuid4().hex
    args = ["ingest", sample, "--build", build, *INGEST]
    h = hurt(args, SIGNALS[sig], probing(tag), env_extra={TAG: tag})
    check_stopped(h, SIGNALS[sig])
    assert not (build / "ingest" / "videos.parquet").exists(), "signalled after the probe"
    assert lock_is_free(build)
    again = run(args)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    assert digest(build) == clean
    check_counts(sample, build)


def check_counts(manifest: Path, build: Path) -> None:
    """Every manifest row once: as a video or as a reject."""
    rows = [
        json.loads(line)["video_id"] for line in manifest.read_text().splitlines() if line.strip()
    ]
    ids = pq.read_table(build / "ingest" / "videos.parquet", columns=["video_id"])[
        "video_id"
    ].to_pylist()
    rejects = (build / "ingest" / "rejects.jsonl").read_text().splitlines()
    assert len(ids) == len(set(ids))
    assert len(ids) + len(rejects) == len(rows) == VIDEOS


# A file on a stalled network mount: its stat answers, its open or read never returns.
# No such mount can be made here; a FIFO blocks the same way once ingest's regular-file
# check (which rejects a FIFO before opening it) is switched off in the child.
STALLED_MOUNT = """
import sys
from vlm_autodrive.builders.ingest import probe, sources
for module in (probe, sources):
    if hasattr(module, "not_regular"):
        module.not_regular = lambda mode: None
from vlm_autodrive.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_ends_an_ingest_blocked_reading_a_source(tmp_path, sig):
    """The hashing thread blocks in a read that never returns; SIGTERM or ^C still ends
    the run within seconds (it waited for that thread for ever), nothing recorded."""
    fifo = tmp_path / "stalled.mp4"
    os.mkfifo(fifo)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"video_id": "x1", "path": fifo.name, "label": "Collision",
                                    "event_time": 1.0}) + "\n")  # fmt: skip
    build = tmp_path / "build"
    marker = uuid.uuid4().hex
    proc = subprocess.Popen(
        [sys.executable, "-c", STALLED_MOUNT, "ingest", str(manifest), "--build", str(build)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=autodrive_env(marker),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    writer = None
    try:
        deadline = time.monotonic() + 60
        while writer is None and proc.poll() is None and time.monotonic() < deadline:
            try:  # succeeds once the run's reader has the FIFO open: it is blocked there
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.02)
        assert writer is not None, "the run never opened the source"
        time.sleep(0.3)  # the reader is now blocked in read(): no data, a writer open
        proc.send_signal(SIGNALS[sig])
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"{sig} did not end the run blocked on its source: {err[-2000:]}")
    finally:
        if writer is not None:
            os.close(writer)
        if proc.poll() is None:
            proc.kill()
    check_stopped(Hurt(proc.returncode, err, True, leftovers(marker)), SIGNALS[sig])
    assert not (build / "ingest" / "videos.parquet").exists()
    assert lock_is_free(build)
