"""`autodrive chunk` with 2 workers, hit by SIGINT, SIGTERM and SIGKILL early (the first
video done) and midway (half of them): the run stops as a user expects, no worker
stays, the lock is free at once, and the same command then finishes with the same
bytes as an uninterrupted run, every video counted once.

Also: the videos' folder disappearing mid-run. 8 short videos of 160x96, 2 s windows:
about 80 s on 2 cores busy with other work (load 8), 45 s more for the slow moments."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.faults.harness import (
    SIGNALS,
    at_least,
    check_stopped,
    count_files,
    digest,
    hurt,
    lock_is_free,
    run,
)

VIDEOS = 8
CHUNK = ["--workers", "2", "--mode", "reencode", "--window", "2", "--stride", "1"]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    """A build folder after `ingest` of a small synthetic sample (copied per scenario)."""
    root = tmp_path_factory.mktemp("chunk-faults")
    sample = ["sample", "--videos", VIDEOS, "--duration", 12, "--width", 160, "--height", 96]
    assert run([*sample, "--fps", 15, "--out", root / "s"]).returncode == 0
    build = root / "ingested"
    assert run(["ingest", root / "s" / "manifest.jsonl", "--build", build]).returncode == 0
    return build


@pytest.fixture(scope="module")
def clean(ingested, tmp_path_factory) -> dict[str, str]:
    build = tmp_path_factory.mktemp("clean") / "build"
    shutil.copytree(ingested, build)
    done = run(["chunk", "--build", build, *CHUNK])
    assert done.returncode == 0, done.stderr
    return digest(build)


SLOW = pytest.mark.slow  # the same paths again at another moment; ~15 s each


@pytest.mark.parametrize(
    ("sig", "moment"),
    [
        ("SIGKILL", 1),
        ("SIGTERM", VIDEOS // 2),
        ("SIGINT", VIDEOS // 2),
        pytest.param("SIGKILL", VIDEOS // 2, marks=SLOW),
        pytest.param("SIGTERM", 1, marks=SLOW),
        pytest.param("SIGINT", 1, marks=SLOW),
    ],
)
def test_chunk_survives_a_signal(ingested, clean, tmp_path, sig, moment):
    build = tmp_path / "build"
    shutil.copytree(ingested, build)
    parts = count_files(build / "chunk" / "parts", "*.json")
    h = hurt(["chunk", "--build", build, *CHUNK], SIGNALS[sig], at_least(parts, moment))
    check_stopped(h, SIGNALS[sig])
    assert parts() < VIDEOS, "every video was done before the signal"
    assert lock_is_free(build)
    again = run(["chunk", "--build", build, *CHUNK])
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    assert digest(build) == clean  # same files, same bytes: nothing lost, nothing doubled
    check_counts(build)


def test_a_source_folder_that_disappears_mid_run_gives_counted_rejects(ingested, clean, tmp_path):
    """The videos' folder is moved away (an unmounted disk) after 2 videos: the rest are
    rejects naming their file, every window counted; with the folder back, the same
    command re-cuts them to a clean run's bytes."""
    build = tmp_path / "build"
    shutil.copytree(ingested, build)
    videos = ingested.parent / "s" / "videos"
    away = videos.with_name("videos.away")
    parts = count_files(build / "chunk" / "parts", "*.json")
    try:
        h = hurt(
            ["chunk", "--build", build, *CHUNK],
            None,
            at_least(parts, 2),
            act=lambda: videos.rename(away),
        )
    finally:
        if away.exists():
            away.rename(videos)
    assert h.signalled and h.left == []
    assert h.returncode == 3, h.stderr  # done, with rejects
    assert "Traceback" not in h.stderr
    rejects = (build / "chunk" / "rejects.jsonl").read_text().splitlines()
    assert rejects and all(str(videos) in line for line in rejects)
    s = json.loads((build / "chunk" / "summary.json").read_text())
    assert s["videos_rejected"] == len(rejects) and s["videos"] == VIDEOS
    assert (
        s["windows_planned"]
        == s["clips"] + sum(s["dropped"].values()) + s["windows_of_rejected_videos"]
    )
    assert lock_is_free(build)
    again = run(["chunk", "--build", build, *CHUNK])
    assert again.returncode == 0, again.stderr
    assert digest(build) == clean
    check_counts(build)


def check_counts(build: Path) -> None:
    """Every video counted once; windows = clips + dropped + windows of rejected videos;
    one row and one file per clip."""
    import pyarrow.parquet as pq

    s = json.loads((build / "chunk" / "summary.json").read_text())
    assert s["videos"] == VIDEOS
    dropped = sum(s["dropped"].values())
    assert s["windows_planned"] == s["clips"] + dropped + s["windows_of_rejected_videos"]
    ids = pq.read_table(build / "chunk" / "clips.parquet", columns=["clip_id"])["clip_id"]
    assert len(ids) == len(set(ids.to_pylist())) == s["clips"]
    assert len(list((build / "clips").rglob("*.mp4"))) == s["clips"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_chunk_on_a_local_ray_survives_a_signal(ingested, clean, tmp_path, sig):
    """`--engine ray` without an address starts a local Ray (GCS, raylet, workers) for the
    run; a kill of the toolkit takes all of it down (Ray shares their fate with the
    driver), and the re-run gives the local engine's bytes. About 90 s each on 2 busy
    cores (Ray's start)."""
    pytest.importorskip("ray")
    build = tmp_path / "build"
    shutil.copytree(ingested, build)
    parts = count_files(build / "chunk" / "parts", "*.json")
    args = ["chunk", "--build", build, *CHUNK, "--engine", "ray"]
    h = hurt(args, SIGNALS[sig], at_least(parts, 1), timeout=300)
    check_stopped(h, SIGNALS[sig])
    assert lock_is_free(build)
    again = run(["chunk", "--build", build, *CHUNK])
    assert again.returncode == 0, again.stderr
    assert digest(build) == clean
