"""One `autodrive` process per build folder: an OS file lock on `BUILD/.lock`.

In: a build folder and the command line of the process taking it. Out: the lock, held
until the block ends or the process dies (the kernel drops an `fcntl.flock` lock with the
last file descriptor, so a `kill -9` never leaves a stale lock behind). The file holds
the holder's pid and command, so a second run fails at once with `BuildLocked`, whose
message names the running process.

Only the process that took the lock holds it: a forked child (a pool worker) shares the
lock's file descriptor, and would keep the lock after its parent was killed, so every
fork closes it in the child (`os.register_at_fork`); `exec`'d children never get it
(the descriptor is not inheritable). Once the lock is taken, temporary files that a
killed run left in the folder (`.NAME.PID.tmp`, `.NAME.PID.parquet.tmp`, of a pid that
is gone) are removed: no other process can be writing them.

Read-modify-write files of the folder (provenance.json, the card, the changelog, eval
outputs) are written atomically too (builders/core/files.py), so a reader never sees a
half-written one; the lock keeps two writers from losing each other's changes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

LOCK_NAME = ".lock"
# `.NAME.PID.tmp` (files.atomic_path, clip cutting) and `.SIDE.PID.parquet.tmp` (mix).
STALE_TMP = re.compile(r"^\..+\.(\d+)(\.parquet)?\.tmp$")

_held_fds: set[int] = set()  # the lock descriptors this process holds


def _close_in_child() -> None:
    """After a fork, in the child: the locks are the parent's; let go of their copies."""
    for fd in _held_fds:
        with suppress(OSError):
            os.close(fd)
    _held_fds.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


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
    _held_fds.add(fd)
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
        remove_stale_tmp(build_dir)
        yield path
    finally:
        _held_fds.discard(fd)
        os.close(fd)  # releases the lock; the file stays (removing it would race)


def remove_stale_tmp(build_dir: Path) -> int:
    """Delete the temporary files of killed runs below `build_dir`; how many.

    Call with the lock held. A file counts when its name is `.NAME.PID[.parquet].tmp`
    and no process PID is running (this process's own are kept).
    """
    removed = 0
    for folder, _, names in os.walk(build_dir):
        for name in names:
            m = STALE_TMP.match(name)
            if m and not _running(int(m.group(1))):
                try:
                    os.unlink(os.path.join(folder, name))
                    removed += 1
                except OSError:
                    pass
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return True


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
