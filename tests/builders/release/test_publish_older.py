"""Publishing a version lower than the newest release (0.0.1 after 0.2.0) is refused
with exit 2 before anything is written or sent, unless `--allow-older` (a fix of an
older line is deliberate; a typo is not). Before, it was accepted silently."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders.small_builds import rule_build
from tests.doubles.hub_server import start_hub_server
from vlm_autodrive.cli import main

REFUSED = "version 0.0.1 is lower than the newest release there, 0.2.0"


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    return rule_build(tmp_path_factory.mktemp("older") / "build", videos=12)


def test_a_folder_target(build, tmp_path, capsys):
    pub = tmp_path / "pub"
    assert main(["publish", str(build), "--version", "0.2.0", "--to", str(pub)]) == 0
    for extra in (["--dry-run"], []):
        capsys.readouterr()
        code = main(["publish", str(build), "--version", "0.0.1", "--to", str(pub), *extra])
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.startswith(f"autodrive: {pub}: {REFUSED}") and "--allow-older" in err
        assert sorted(p.name for p in pub.iterdir()) == ["v0.2.0"]
    args = ["publish", str(build), "--version", "0.0.1", "--to", str(pub), "--allow-older"]
    assert main(args) == 0
    assert sorted(p.name for p in pub.iterdir()) == ["v0.0.1", "v0.2.0"]
    # above the newest needs no flag
    assert main(["publish", str(build), "--version", "0.3.0", "--to", str(pub)]) == 0


def test_the_hub(build, tmp_path):
    token = "hf_test" + secrets.token_hex(12)
    with start_hub_server(tmp_path / "hub", token) as hub:

        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "vlm_autodrive.cli", "publish", str(build), *args],
                env=hub.client_env(tmp_path / "client", token=token),
                capture_output=True,
                text=True,
                timeout=300,
            )

        assert cli("--repo", "org/d", "--version", "0.2.0").returncode == 0
        before = len(hub.requests)
        proc = cli("--repo", "org/d", "--version", "0.0.1")
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith(f"autodrive: datasets/org/d: {REFUSED}")
        assert "Traceback" not in proc.stderr
        sent = [r for r in hub.requests[before:] if r.method in ("POST", "PUT", "DELETE")]
        assert sent == []
        proc = cli("--repo", "org/d", "--version", "0.0.1", "--allow-older")
        assert proc.returncode == 0, proc.stderr
        assert set(hub.refs("org/d")["tags"]) == {"v0.0.1", "v0.2.0"}
