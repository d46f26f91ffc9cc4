"""A visible wait: a spinner with the elapsed time, for waits with no count to show.

Starting a local vLLM server takes ~40 s on a CPU with nothing to count: without a sign
of life a user cannot tell a slow start from a hang. `Waiting` prints one line saying
what it waits for and where its log is, then, on a terminal, a tqdm spinner with the
elapsed time (redrawn in place), and finally one line with the total time. Off a
terminal (CI logs, pipes) only the first and last lines are written, no redraws.

    with Waiting("starting vLLM server for smollm2", log=path) as w:
        while not ready():
            w.tick()
            time.sleep(0.5)
        w.done("vLLM server ready")
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path
from typing import TextIO

SPINNER = "|/-\\"


class Waiting:
    """One wait, as a context manager; see the module docstring.

    In: `what` (the first line, e.g. "starting vLLM server for M"), `log` (a path shown
    with it, or None), `stream` (default stderr, where tqdm draws). `tick()` redraws the
    spinner; `done(message)` ends the wait with "message after N.N s"; leaving the block
    without `done` (an error) writes "... gave up after N.N s".
    """

    def __init__(self, what: str, log: str | Path | None = None, stream: TextIO | None = None):
        self.what = what
        self.log = log
        self.stream = stream if stream is not None else sys.stderr
        self.started = 0.0
        self._bar = None
        self._frames = itertools.cycle(SPINNER)
        self._ended = False

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def __enter__(self) -> Waiting:
        self.started = time.monotonic()
        where = f" (log: {self.log})" if self.log else ""
        print(f"{self.what}{where}", file=self.stream, flush=True)
        if _is_terminal(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(
                total=None,
                file=self.stream,
                bar_format="  {desc} {elapsed} elapsed",
                desc=next(self._frames),
                leave=False,
            )
        return self

    def tick(self) -> None:
        """Turn the spinner and redraw the elapsed time (nothing off a terminal)."""
        if self._bar is not None:
            self._bar.set_description_str(next(self._frames), refresh=True)

    def done(self, message: str) -> None:
        """End the wait: close the spinner, print `message after N.N s`."""
        self._end(f"{message} after {self.elapsed:.1f} s")

    def _end(self, line: str) -> None:
        if self._ended:
            return
        self._ended = True
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        print(line, file=self.stream, flush=True)

    def __exit__(self, *exc: object) -> None:
        self._end(f"{self.what}: gave up after {self.elapsed:.1f} s")


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
