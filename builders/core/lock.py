"""One `autodrive` process per build folder: an OS file lock on `BUILD/.lock`.

In: a build folder and the command line of the process taking it. Out: the lock, held
until the block ends or the process dies (the kernel drops an `fcntl.flock` lock with the
last file descriptor, so a `kill -9` never leaves a stale lock behind). The file holds
the holder's pid and command, so a second run fails at once with `BuildLocked`, whose
message names the running process.

Read-modify-write files of the folder (provenance.json, the card, the changelog, eval
outputs) are written atomically too (builders/core/files.py), so a reader never sees a
half-written one; the lock keeps two writers from losing each other's changes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".lock"


class BuildLocked(ValueError):
    """Another process holds the build folder's lock; the message names it."""


@contextmanager
def build_lock(build_dir: Path, command: str, *, create: bool = True) -> Iterator[Path | None]:
    """Hold `build_dir/.lock` for the block; BuildLocked at once if another process has it.

    A missing folder is created when `create` (build, ingest, chunk make it anyway); else
    the block runs without a lock (yielding None): there is nothing to protect, and the
    command says in its own words that the folder is missing.
    """
    import fcntl

    build_dir = Path(build_dir)
    if not build_dir.is_dir():
        if not create:
            yield None
            return
        build_dir.mkdir(parents=True, exist_ok=True)
    path = build_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BuildLocked(
                f"{path}: the build folder is in use by {_holder(path)}; wait for it to "
                "finish (or stop it), then run this command again"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "command": command}).encode() + b"\n")
        yield path
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race)


def _holder(path: Path) -> str:
    """`pid N (COMMAND)` of the process named in the lock file, as far as it can be read."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    pid, command = info.get("pid"), info.get("command")
    if pid is None:
        return "another process"
    return f"pid {pid} ({command})" if command else f"pid {pid}"
