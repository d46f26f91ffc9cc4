"""The fault suite's tally, printed at the end of the run: scenarios run, survived (the
test passed: the run stopped cleanly, left nothing, and a re-run gave a clean run's
bytes), and processes left behind (any, even in a passing scenario, is listed)."""

from __future__ import annotations

from tests.faults import harness

_OUTCOMES: dict[str, bool] = {}


def pytest_runtest_logreport(report):
    if "tests/faults/" not in report.nodeid.replace("\\", "/"):
        return
    if report.when == "call" or (report.when == "setup" and report.failed):
        _OUTCOMES[report.nodeid] = report.passed


def pytest_terminal_summary(terminalreporter):
    if not _OUTCOMES:
        return
    run, survived = len(_OUTCOMES), sum(_OUTCOMES.values())
    left = harness.LEFT_BEHIND
    terminalreporter.write_line(
        f"fault suite: {run} scenarios run, {survived} survived, {len(left)} processes left behind"
    )
    for line in left:
        terminalreporter.write_line(f"  left behind: {line}")
