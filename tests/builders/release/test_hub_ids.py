"""Hub ids wherever a build folder is read: `autodrive show`, `autodrive export-rl` and the
Python API's `load` take `ORG/NAME[@vX.Y.Z]` and read the published release, downloaded
with huggingface_hub from the local Hub server (tests/doubles/hub_server.py), as a user's
machine would from the Hub. Clients run as subprocesses with the server's environment
(HF_ENDPOINT is read when huggingface_hub is imported).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.builders.small_builds import rule_build
from tests.doubles.hub_server import start_hub_server
from vlm_autodrive.builders.dataset.folder import data_path
from vlm_autodrive.builders.release.hub_ids import parse_hub_id, resolve_build

TOKEN = "hf_test" + secrets.token_hex(12)
REPO = "org/drive"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The local Hub with v0.1.0 of a small build published through the CLI."""
    base = tmp_path_factory.mktemp("hubids")
    build = rule_build(base / "build", videos=12)
    with start_hub_server(base / "hub", TOKEN) as server:
        proc = client(server, base, "-m", "vlm_autodrive.cli", "publish", str(build),
                      "--repo", REPO, "--version", "0.1.0")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        yield {"server": server, "base": base, "build": build}


def client(server, base: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, *args],
        env=server.client_env(base / "client", token=TOKEN),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def autodrive(hub, *args: str) -> subprocess.CompletedProcess:
    return client(hub["server"], hub["base"], "-m", "vlm_autodrive.cli", *args)


def test_show_reads_a_published_version_by_its_hub_id(hub, tmp_path):
    proc = autodrive(hub, "show", f"{REPO}@0.1.0", "mcq", "-n", "1", "--split", "test")
    assert proc.returncode == 0, proc.stderr
    tests = pq.read_table(data_path(hub["build"], "mcq", "test")).num_rows
    assert f"showing 1 of {tests} rows of mcq (test {tests})" in proc.stdout
    page = tmp_path / "page.html"
    proc = autodrive(hub, "show", f"{REPO}@v0.1.0", "mcq", "-n", "2", "--html", str(page))
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "missing" not in proc.stdout  # the clips came too


def test_export_rl_and_the_api_load_read_it_too(hub, tmp_path):
    out = tmp_path / "rl"
    proc = autodrive(hub, "export-rl", REPO + "@v0.1.0", "--out", str(out), "--configs", "mcq")
    assert proc.returncode == 0, proc.stderr
    trains = pq.read_table(data_path(hub["build"], "mcq", "train")).num_rows
    assert 0 < pq.read_table(out / "train.parquet").num_rows <= trains
    code = (
        "import json, vlm_autodrive as ad\n"
        f"d = ad.load('{REPO}@v0.1.0', 'mcq')\n"
        "print(json.dumps({s: d[s].num_rows for s in d}))\n"
    )
    proc = client(hub["server"], hub["base"], "-c", code)
    assert proc.returncode == 0, proc.stderr
    tests = pq.read_table(data_path(hub["build"], "mcq", "test")).num_rows
    assert json.loads(proc.stdout.splitlines()[-1]) == {"train": trains, "test": tests}


def test_a_missing_version_or_dataset_is_bad_input(hub):
    proc = autodrive(hub, "show", f"{REPO}@v9.9.9", "mcq")
    assert proc.returncode == 2 and proc.stderr.startswith("autodrive: BUILD: ")
    assert "has no revision 'v9.9.9'" in proc.stderr
    proc = autodrive(hub, "export-rl", "org/nothere", "--out", "x")
    assert proc.returncode == 2 and "no Hub dataset org/nothere" in proc.stderr


def test_ids_and_local_paths(tmp_path, monkeypatch):
    assert parse_hub_id("org/name@1.2.0") == ("org/name", "v1.2.0")
    assert parse_hub_id("org/name@main") == ("org/name", "main")
    assert parse_hub_id("org/name") == ("org/name", None)
    assert parse_hub_id("/abs/path") is None and parse_hub_id("a/b/c") is None
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert resolve_build("org/name") == Path("org/name")  # a folder that exists wins
    with pytest.raises(FileNotFoundError, match="no such build folder"):
        resolve_build("org/typo")  # `org` is a local folder: a typo, not a Hub id


def test_eval_reads_a_hub_dataset_by_its_version(hub, tmp_path):
    from tests.doubles.fake_server import FakeOpenAIServer

    tests = pq.read_table(data_path(hub["build"], "mcq", "test")).num_rows
    with FakeOpenAIServer(model="served-vlm") as server:
        proc = autodrive(hub, "eval", "--model", "served-vlm", "--base-url", server.base_url,
                         "--dataset", f"{REPO}@0.1.0", "--out", str(tmp_path / "e"))  # fmt: skip
        asked = len(server.bodies)
    assert proc.returncode == 0, proc.stderr
    assert asked == tests
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert report["dataset"]["rows"] == tests
