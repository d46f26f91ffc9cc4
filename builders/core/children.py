"""Child processes that end with the toolkit's process, however it ends (kill -9 too).

In: nothing to configure. Out: `worker_pool(n)`, a `ProcessPoolExecutor` whose workers
die with the process that made them; `die_with_parent()`, the same for any child (a
`Popen` `preexec_fn`); `start_group_watchdog(pgid)`, a small process that ends a whole
process group (the local vLLM server and the engine processes it spawns) once this
process is gone.

Why: `atexit` and `finally` do not run after SIGKILL, and a pool worker blocked on its
task queue never notices that its parent is gone: it keeps the build folder's lock
(a forked child shares the lock's file descriptor) and the CPU. Linux delivers a
parent-death signal (`prctl(PR_SET_PDEATHSIG)`) to a child the moment the thread that
forked it ends. A server started in its own session has children of its own (vLLM's
engine processes) that no signal to it reaches: a watchdog ends its whole group. A pool
worker forked by a thread other than the main one polls for its parent instead (that
thread may end before the process does, which would fire the signal too early).
Elsewhere than Linux nothing is set and the previous behaviour stays.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1
# How often a watch looks whether its parent is still there (seconds).
POLL_S = 0.5

_forked_by_main_thread = True  # set just before each fork (os.register_at_fork)


def _note_forking_thread() -> None:
    global _forked_by_main_thread
    _forked_by_main_thread = threading.current_thread() is threading.main_thread()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_note_forking_thread)


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send `sig` to this process when its parent thread ends; True if set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(parent_pid: int | None = None) -> None:
    """In a fresh child: end it (SIGKILL) when `parent_pid` (default: the parent) ends.

    Safe in a `Popen(preexec_fn=...)` (only a system call and `os._exit`). A parent that
    died before this ran is caught by comparing pids afterwards.
    """
    parent_pid = parent_pid if parent_pid is not None else os.getppid()
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_S)
    os._exit(1)


def _init_worker(parent_pid: int) -> None:
    """Pool worker initializer: die with the parent; leave ^C and SIGTERM to it."""
    by_main_thread = _forked_by_main_thread
    die_with_parent(parent_pid)
    if not by_main_thread:  # the forking thread may end first: poll instead of the signal
        set_parent_death_signal(0)
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    # A ^C at a terminal reaches the whole process group: the parent stops the pool and
    # says so once, instead of every worker printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def new_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool whose workers die with this process (see the module docstring)."""
    return ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(os.getpid(),))


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """`new_pool(workers)` for the block. Leaving it normally waits for the work; leaving
    it by an exception (^C, SIGTERM, the consumer stopping early) drops the queued work
    and kills the running workers at once: an interrupted run resumes from what is
    finished, so their half-done work is not worth waiting for."""
    pool = new_pool(workers)
    try:
        yield pool
    except BaseException:
        stop_pool(pool)
        raise
    else:
        pool.shutdown(wait=True)


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and SIGKILL the workers; returns when they are gone,
    and so is the pool's manager thread."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        with contextlib.suppress(Exception):
            p.kill()
    for p in processes:
        with contextlib.suppress(Exception):
            p.join(timeout=5)
    # Why wait for the manager thread: once it sees the workers gone it closes its wakeup
    # pipe, and Python's exit hook for process pools (3.11) writes to that pipe without
    # the pool's lock. A process that exits while the thread is still closing it prints
    # "OSError: Bad file descriptor" with a traceback after "interrupted".
    if manager is not None:
        with contextlib.suppress(Exception):
            manager.join(timeout=5)


# A separate small Python: waits for its parent (the toolkit) to end, then SIGTERMs the
# process group, and SIGKILLs it after a grace time. It exits by itself once the group is
# gone. It imports nothing of the toolkit, so it starts in ~20 ms.
_WATCHDOG = """
import os, signal, sys, time
parent, group, grace = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
def alive():
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
while os.getppid() == parent:
    if not alive():
        sys.exit(0)
    time.sleep(0.2)
try:
    os.killpg(group, signal.SIGTERM)
except ProcessLookupError:
    sys.exit(0)
end = time.monotonic() + grace
while alive() and time.monotonic() < end:
    time.sleep(0.2)
try:
    os.killpg(group, signal.SIGKILL)
except ProcessLookupError:
    pass
"""


def start_group_watchdog(pgid: int, grace: float = 10.0) -> subprocess.Popen:
    """Start the watchdog of process group `pgid` (see `_WATCHDOG`); stop it with
    `.kill()` when the group was stopped the ordinary way."""
    return subprocess.Popen(
        [sys.executable, "-S", "-c", _WATCHDOG, str(os.getpid()), str(pgid), str(grace)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a ^C at the terminal is for the toolkit, not for it
    )
