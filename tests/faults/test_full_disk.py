"""`autodrive chunk` on a build folder whose disk fills up while clips are written (a
3 MiB tmpfs of its own, filled to ~300 KB free; root only, skipped with the reason
elsewhere): the run stops with exit 1 and an `error:` naming the full disk's file, no
traceback, no process left, the lock free, and no video counted as done whose clips are
not all there whole; once the space is freed, the same command finishes with the bytes
of a clean run, every video counted once.

The chunk scenarios' sample (8 videos of 12 s, 160x96): about 20 s on 2 cores busy
with other work (load 8), most of it the module's clean run."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from tests.disks import small_tmpfs
from tests.faults import harness
from tests.faults.harness import autodrive_env, digest, leftovers, lock_is_free, run
from tests.faults.test_chunk_signals import CHUNK, VIDEOS, check_counts

# The chunk scenarios' fixtures (module-scoped: made again for this module).
from tests.faults.test_chunk_signals import clean as clean
from tests.faults.test_chunk_signals import ingested as ingested

FREE_AFTER_FILL = 300 * 1024  # room for a few videos' clips, not for all of them


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 3 MiB tmpfs of its own (root only; skipped with the reason elsewhere)."""
    yield from small_tmpfs(tmp_path / "disk", "3m")


def fill(disk: Path, leave: int) -> Path:
    """A file taking all of `disk`'s free space but `leave` bytes (delete it to free)."""
    st = os.statvfs(disk)
    filler = disk / "filler"
    with contextlib.suppress(OSError):
        filler.write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


def whole_parts(build: Path) -> list[str]:
    """The videos the build records as done; each one's clips must be there, whole (the
    size and sha256 its part names)."""
    done = []
    for part in sorted((build / "chunk" / "parts").glob("*.json")):
        record = json.loads(part.read_text())
        for rel, (size, sha) in record["files"].items():
            path = build / rel
            assert path.is_file(), f"{part.name} counts {rel} as done; it is not there"
            data = path.read_bytes()
            assert len(data) == size and hashlib.sha256(data).hexdigest() == sha, rel
        done.append(part.stem)
    return done


def test_chunk_on_a_full_disk_stops_cleanly_and_resumes_once_space_is_freed(
    ingested, clean, small_disk
):
    build = small_disk / "build"
    shutil.copytree(ingested, build)
    filler = fill(small_disk, FREE_AFTER_FILL)
    marker = uuid.uuid4().hex
    args = ["chunk", "--build", build, *CHUNK]
    full = run(args, env=autodrive_env(marker))
    left = leftovers(marker)
    harness.LEFT_BEHIND.extend(left)
    assert full.returncode == 1, full.stderr[-3000:]
    assert "Traceback" not in full.stderr, full.stderr[-4000:]
    errors = [ln for ln in full.stderr.splitlines() if "error: " in ln]
    assert errors and "No space left on device" in errors[-1], full.stderr[-3000:]
    assert str(small_disk) in errors[-1]  # names the file on the full disk
    assert left == [], f"processes left behind: {left}"
    assert lock_is_free(build)
    assert len(whole_parts(build)) < VIDEOS, "the disk did not fill up: leave less room"
    filler.unlink()  # the user frees the space
    again = run(args)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    assert not list(build.rglob("*.tmp")), "the full run's temporary files are still there"
    assert digest(build) == clean
    check_counts(build)
