"""One `autodrive` process per build folder: a second run fails at once, naming the first;
the lock goes with the process that held it, even when it is killed."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.builders.small_builds import rule_build

HOLD = """
import sys, time
from vlm_autodrive.builders.core.lock import build_lock
with build_lock(sys.argv[1], "autodrive mix recipes/mixtures/quickstart.yaml --build B"):
    print("locked", flush=True)
    time.sleep(120)
"""


def autodrive(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vlm_autodrive.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_second_run_on_a_locked_folder_fails_at_once_naming_the_holder(tmp_path):
    build = rule_build(tmp_path / "build", videos=16)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(build)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        proc = autodrive("publish", str(build), "--version", "0.1.0", "--to", str(tmp_path / "p"))
        assert proc.returncode == 2, proc.stderr
        assert f"in use by pid {holder.pid} (autodrive mix recipes/mixtures/" in proc.stderr
        assert "Traceback" not in proc.stderr and time.monotonic() - start < 30
        assert not (tmp_path / "p").exists()
    finally:
        holder.kill()  # SIGKILL: no cleanup code runs, the kernel drops the lock
        holder.wait()
    proc = autodrive("publish", str(build), "--version", "0.1.0", "--to", str(tmp_path / "p"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "p" / "v0.1.0" / "README.md").is_file()
    assert ".lock" not in {p.name for p in (tmp_path / "p" / "v0.1.0").iterdir()}
