"""A small tmpfs of a test's own, for full-disk tests (root only; the test is skipped with
the reason elsewhere)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def small_tmpfs(disk: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of `size` (e.g. "4m") on the new folder `disk`, yield it, unmount."""
    disk.mkdir()
    try:
        subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={size}",
                f"tmpfs-{uuid.uuid4().hex[:8]}",
                str(disk),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"cannot mount a small tmpfs here (needs root and mount rights): {e}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
