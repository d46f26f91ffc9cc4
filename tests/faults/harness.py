"""Run the real `autodrive` in a subprocess, hurt it, and check what a user would check.

In: a command line and a moment (a condition on the build folder) at which to send a
signal. Out: what the process left behind: its exit code and stderr, every process it
started that is still there (found by a marker in their environment, so grandchildren
reparented after a kill -9 are found too), whether the build lock is free, and a
digest of the folder's files to compare with a clean run's.

Each scenario is counted in the suite's tally (tests/faults/conftest.py prints it):
scenarios run, survived (the test passed), processes left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from vlm_autodrive.builders.core.lock import BuildLocked, build_lock

MARKER = "AUTODRIVE_FAULT_SCENARIO"
# Files that are bookkeeping of the run, not its output: the lock names the last
# holder's pid; a chunk part records the clip files' modification times (to notice an
# edit), which differ between two runs writing the same bytes.
# Bookkeeping, not outputs: the lock, logs, and the memos of file hashes by modification
# time (cache/clip_states.json, cache/model_hashes.json) that differ with the run's timing.
NOT_OUTPUT = (".lock", "chunk/parts/", "logs/", "cache/clip_states.json", "cache/model_hashes.json")

LEFT_BEHIND: list[str] = []  # "pid cmdline" of every process a scenario left behind


@dataclass
class Hurt:
    """One run that was sent a signal: what came out of it."""

    returncode: int
    stderr: str
    signalled: bool  # the signal was sent while the process still ran
    left: list[str] = field(default_factory=list)


def autodrive_env(marker: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, MARKER: marker, "PYTHONUNBUFFERED": "1"}
    env.update(extra or {})
    return env


def run(args: list[str], *, env: dict | None = None, timeout: float = 300, cwd=None):
    """`autodrive ARGS` to the end; the CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable, "-m", "vlm_autodrive.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or autodrive_env("clean-" + uuid.uuid4().hex),
        cwd=cwd,
    )


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def hurt(
    args: list[str],
    sig: int | None,
    when: Callable[[], bool],
    *,
    act: Callable[[], None] | None = None,
    env_extra: dict[str, str] | None = None,
    timeout: float = 120,
    cwd=None,
) -> Hurt:
    """Start `autodrive ARGS`, send `sig` (or call `act`) once `when()` holds, and wait
    for it to end.

    The signal goes to the toolkit's process only, as `kill PID`, `timeout`, `docker
    stop` send it (a terminal's ^C reaches the whole group; the workers ignore it).
    """
    marker = uuid.uuid4().hex
    proc = subprocess.Popen(
        [sys.executable, "-m", "vlm_autodrive.cli", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=autodrive_env(marker, env_extra),
        cwd=cwd,
        # As from a terminal: a suite started in the background (`cmd &` without job
        # control) ignores SIGINT, and the child would inherit that and never see ^C.
        preexec_fn=_sigint_default,
    )
    deadline = time.monotonic() + timeout
    signalled = False
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if when():
                if sig is not None:
                    proc.send_signal(sig)
                if act is not None:
                    act()
                signalled = True
                break
            time.sleep(0.01)
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    left = leftovers(marker)
    LEFT_BEHIND.extend(left)
    return Hurt(proc.returncode, err, signalled, left)


def leftovers(marker: str, wait: float = 15.0) -> list[str]:
    """Processes still running with `marker` in their environment after `wait` seconds
    (a watchdog gives a server some seconds to stop); they are killed, and listed."""
    end = time.monotonic() + wait
    while True:
        found = []
        for p in psutil.process_iter(["pid", "status", "cmdline"]):
            try:
                if p.info["status"] == psutil.STATUS_ZOMBIE or p.pid == os.getpid():
                    continue
                if p.environ().get(MARKER) == marker:
                    found.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        if not found or time.monotonic() > end:
            break
        time.sleep(0.2)
    described = [f"{p.pid} {' '.join(p.info['cmdline'] or [])[:120]}" for p in found]
    for p in found:  # leave the machine clean for the next scenario either way
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    return described


def lock_is_free(build: Path) -> bool:
    try:
        with build_lock(build, "fault suite check", create=False):
            return True
    except BuildLocked:
        return False


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every output file below `folder` (bookkeeping files left out)."""
    out = {}
    for path in sorted(Path(folder).rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not any(rel.startswith(x) or rel == x for x in NOT_OUTPUT):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def count_files(folder: Path, pattern: str) -> Callable[[], int]:
    return lambda: len(list(Path(folder).glob(pattern)))


def at_least(counter: Callable[[], int], n: int) -> Callable[[], bool]:
    return lambda: counter() >= n


SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
# What a user sees as the exit status of each (the shell's 128 + n for SIGKILL).
EXPECTED_CODE = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL}
RESUME_HINT = "run the same command to resume"


def check_stopped(h: Hurt, sig: int) -> None:
    """The run was hit while running and ended as a user expects for that signal."""
    assert h.signalled, "the run ended before the signal: move the moment earlier"
    assert h.returncode == EXPECTED_CODE[sig], h.stderr[-2000:]
    if sig != signal.SIGKILL:
        assert RESUME_HINT in h.stderr, h.stderr[-2000:]
        assert "Traceback" not in h.stderr, h.stderr[-4000:]
    assert h.left == [], f"processes left behind: {h.left}"
