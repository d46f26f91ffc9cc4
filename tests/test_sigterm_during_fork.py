"""A SIGTERM that lands while multiprocessing forks a worker is not lost: raised inside
os.fork's at-fork hooks (logging's lock release runs there), Terminated would be printed
and dropped and the run would exit 0, so the handler sends the signal again once the fork
is over (issue 23: the fault suite's ingest SIGTERM scenario lost it 1 run in 6)."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from vlm_autodrive import cli


def _frame_inside_launch():
    """A frame whose caller is `_launch` of a file named popen_fork.py, as a signal
    handler sees it during Popen._launch's os.fork."""
    code = compile("def _launch():\n    return sys._getframe()\n", "popen_fork.py", "exec")
    scope = {"sys": sys}
    exec(code, scope)
    return scope["_launch"]()


def test_sigterm_inside_a_fork_is_sent_again_not_raised(monkeypatch):
    sent = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    cli._raise_terminated(signal.SIGTERM, _frame_inside_launch())  # no raise here
    deadline = time.time() + 5
    while not sent and time.time() < deadline:
        time.sleep(0.01)
    assert sent == [(os.getpid(), signal.SIGTERM)]


def test_sigterm_elsewhere_stops_the_run(monkeypatch):
    monkeypatch.setattr(signal, "signal", lambda *a: None)  # keep pytest's own handlers
    with pytest.raises(cli.Terminated):
        cli._raise_terminated(signal.SIGTERM, sys._getframe())
