"""Shared by the GPU check's parts: run a command under a time box while timestamping each
line it prints, and turn the timestamps of a trainer's per-step log lines into rates.

Standard library only: the orchestrator imports this before any environment exists.

Why line timestamps: `autodrive train` is measured as users run it, unchanged. With
`logging_steps: 1` and `disable_tqdm: true`, transformers' PrinterCallback prints one
`{'loss': ...}` line at the end of every optimizer step, after the loss has been read
back from the device (`.item()` synchronises), so the time between two such lines is one
step's wall time. The plain-TRL baseline prints the same lines and is timed the same way.
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

STEP_LINE = "'loss':"  # PrinterCallback's per-step dict; the final summary has 'train_loss'
RESULT_PREFIX = "GPU_CHECK_RESULT "  # a child's one-line JSON result on stdout


@dataclass
class Run:
    """One finished (or killed) command: exit code, whether the time box ended it, its
    wall seconds, every stdout/stderr line with its arrival time (seconds after start)."""

    cmd: list[str]
    returncode: int | None
    timed_out: bool
    seconds: float
    lines: list[tuple[float, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def tail(self, n: int = 25) -> str:
        return "\n".join(text for _, text in self.lines[-n:])

    def step_times(self) -> list[float]:
        """Arrival times of the per-step log lines."""
        return [t for t, text in self.lines if STEP_LINE in text and text.lstrip().startswith("{")]

    def step_losses(self) -> list[float | None]:
        """The loss each per-step log line reports (None where it does not parse)."""
        losses = []
        for _, text in self.lines:
            if STEP_LINE in text and text.lstrip().startswith("{"):
                try:
                    losses.append(float(ast.literal_eval(text.strip())["loss"]))
                except (ValueError, SyntaxError, KeyError, TypeError):
                    losses.append(None)
        return losses

    def result(self) -> dict | None:
        """The JSON a child printed after RESULT_PREFIX (the last one), if any."""
        for _, text in reversed(self.lines):
            if text.startswith(RESULT_PREFIX):
                return json.loads(text[len(RESULT_PREFIX) :])
        return None

    def failure(self) -> str:
        """A one-paragraph reason for a failed run: the time box, or the exit code and
        the last lines it printed."""
        last = next((t for _, t in reversed(self.lines) if t.strip()), "")
        if self.timed_out:
            return f"time box of {self.seconds:.0f} s reached; last output:\n{self.tail(12)}"
        return f"exit code {self.returncode}: {last.strip()[:300]}\n{self.tail(25)}"


def run_timed(
    cmd: list[str],
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
    watch: Path | None = None,
) -> Run:
    """Run `cmd` (stdout and stderr merged), timestamping each line; kill its whole
    process group when `timeout` seconds pass. `log`: also write every line there.
    `watch`: a JSON-lines file the command appends to; each new line is recorded as
    `WATCH <line>` with its arrival time (polled every 50 ms)."""
    start = time.monotonic()
    lines: list[tuple[float, str]] = []
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=env,
        cwd=cwd,
        start_new_session=True,  # its own process group: a timeout kills its children too
    )
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(watch, lines, start, done), daemon=True)
    if watch is not None:
        watcher.start()
    sink = log.open("a") if log else None
    killed = threading.Event()
    timer = threading.Timer(timeout, _kill_group, args=(proc, killed))
    timer.start()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            text = raw.rstrip("\n")
            lines.append((time.monotonic() - start, text))
            if sink:
                sink.write(text + "\n")
                sink.flush()
        proc.wait()
    finally:
        timer.cancel()
        done.set()
        if sink:
            sink.close()
    if watch is not None:
        watcher.join()
    lines.sort(key=lambda item: item[0])
    return Run(cmd, proc.returncode, killed.is_set(), time.monotonic() - start, lines)


def _kill_group(proc: subprocess.Popen, killed: threading.Event) -> None:
    killed.set()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _watch(path: Path, lines: list, start: float, done: threading.Event) -> None:
    seen = 0
    while True:
        finished = done.is_set()
        if path.is_file():
            rows = path.read_text().splitlines()
            now = time.monotonic() - start
            for row in rows[seen:]:
                lines.append((now, "WATCH " + row))
            seen = len(rows)
        if finished:
            return
        time.sleep(0.05)


def steady_rate(times: list[float], warmup: int, per_step: float) -> dict:
    """Steady-state rate from the end times of consecutive steps: the first `warmup`
    steps are left out (compilation, allocator growth, first DeepSpeed gathers), the
    rest timed from the end of step `warmup`. Returns steps timed, seconds, steps/s,
    units/s (`per_step` units a step, e.g. samples), and the median step time."""
    if len(times) < warmup + 2:
        raise ValueError(
            f"{len(times)} step lines seen; need at least {warmup + 2} for a steady-state "
            f"rate after {warmup} warm-up steps"
        )
    timed = times[warmup:]
    seconds = timed[-1] - timed[0]
    steps = len(timed) - 1
    gaps = sorted(b - a for a, b in itertools.pairwise(timed))
    return {
        "steps_total": len(times),
        "warmup_steps": warmup,
        "steps_timed": steps,
        "seconds_timed": round(seconds, 3),
        "steps_per_s": round(steps / seconds, 4),
        "units_per_s": round(steps * per_step / seconds, 4),
        "median_step_s": round(gaps[len(gaps) // 2], 4),
        "first_step_at_s": round(times[0], 2),
    }


def print_result(result: dict) -> None:
    """A child's result line for `Run.result()`."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)
