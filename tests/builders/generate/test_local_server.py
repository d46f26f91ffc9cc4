"""The local vLLM server's start as a user sees it: a visible wait, a readable death,
and an interpreter found from any working directory.

The server is tests/doubles/fake_vllm_python.py standing in for vLLM's python (real
processes, real HTTP on a loopback port); the real server is started by
test_backends.py and test_real_engines.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO
from vlm_autodrive.builders.generate.backends.common import BackendUnavailable
from vlm_autodrive.builders.generate.backends.local_server import (
    LocalVLLMServer,
    find_server_python,
)

FAKE = REPO / "tests" / "doubles" / "fake_vllm_python.py"
AUTODRIVE = Path(sys.executable).parent / "autodrive"


def fake_python(tmp_path: Path) -> Path:
    """An executable that takes the server's command line as vLLM's python would."""
    exe = tmp_path / "fake-vllm" / "bin" / "python"
    exe.parent.mkdir(parents=True)
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    exe.chmod(0o755)
    return exe


def test_start_shows_the_log_path_and_the_elapsed_time(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_DELAY", "1.5")
    log = tmp_path / "logs" / "server.log"
    server = LocalVLLMServer("models/m", python=fake_python(tmp_path), log_path=log, cpu=False)
    with server:
        assert server.proc.poll() is None
    err = capfd.readouterr().err.splitlines()  # not a terminal: no redraws, two lines
    assert err[0] == f"starting vLLM server for m on {server.base_url} (log: {log})"
    (last,) = [line for line in err if line.startswith("vLLM server ready after")]
    assert float(re.search(r"after ([\d.]+) s", last)[1]) >= 1.5
    assert "\r" not in "".join(err)
    assert "fake vLLM:" in log.read_text()


def test_a_server_that_dies_prints_the_last_lines_of_its_log(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM", "die")
    log = tmp_path / "server.log"
    server = LocalVLLMServer("models/m", python=fake_python(tmp_path), log_path=log, cpu=False)
    with pytest.raises(BackendUnavailable) as e:
        server.start()
    msg = str(e.value)
    assert "exited with code 3" in msg and str(log) in msg
    assert "RuntimeError: fake engine failed to start" in msg
    assert "engine log line 30" in msg and "engine log line 05" not in msg  # the tail only
    assert "gave up after" in capfd.readouterr().err
    assert server.proc is None


def test_build_with_a_dying_local_server_exits_4_with_the_log_tail(tmp_path):
    """`autodrive build` as a user runs it, from another working directory: the rule
    stages finish, the model split's server dies, exit 4 with its log's last lines."""
    py = fake_python(tmp_path)
    (tmp_path / "models" / "tiny").mkdir(parents=True)  # the recipe's checks want the folder
    (tmp_path / "models" / "tiny" / "config.json").write_text("{}")  # and a model file
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        textwrap.dedent(f"""\
        manifest: {tmp_path}/sample/manifest.jsonl
        build_dir: {tmp_path}/build
        sample: {{videos: 3, duration: 4.0, width: 96, height: 64, fps: 10.0, gop: 10}}
        chunk: {{window: 2.0, stride: 2.0, margin: 0.5, workers: 1}}
        rules: {{test_per_class: 0}}
        generate:
          models:
            text: {{model: {tmp_path}/models/tiny, local_server: true, server_python: {py}}}
          configs:
            vqa: {{model: text}}
        """)
    )
    env = {**os.environ, "FAKE_VLLM": "die"}
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    r = subprocess.run(
        [str(AUTODRIVE), "build", str(recipe)], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert r.returncode == 4, r.stdout + r.stderr
    log = tmp_path / "build" / "logs" / "vllm-server-tiny.log"
    assert f"(log: {log})" in r.stderr
    assert "exited with code 3" in r.stderr and "engine log line 30" in r.stderr
    assert "Traceback" not in r.stderr


def test_server_python_is_found_from_the_project_or_named_in_the_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .venv-vllm here
    project = REPO / ".venv-vllm" / "bin" / "python"
    if project.exists():
        assert find_server_python() == project
    py = fake_python(tmp_path)
    assert find_server_python(py) == py
    with pytest.raises(FileNotFoundError, match="server_python: /nowhere/python does not"):
        find_server_python("/nowhere/python")


def test_server_python_is_a_validated_recipe_key():
    from vlm_autodrive.builders.generate.config import ModelConfig

    py = sys.executable
    with pytest.raises(ValueError, match="server_python: not used with a server at base_urls"):
        ModelConfig(model="m", base_urls=["http://h:1/v1"], server_python=py)
    with pytest.raises(ValueError, match="server_python: not used with backend vllm"):
        ModelConfig(backend="vllm", model="m", server_python=py)
    with pytest.raises(ValueError, match="/x/python does not exist"):
        ModelConfig(model="m", local_server=True, server_python="/x/python")
    assert ModelConfig(model="m", local_server=True, server_python=py).server_python == py


def test_a_missing_server_python_stops_the_build_before_ingest(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "manifest: m.jsonl\nbuild_dir: b\ngenerate:\n  models:\n    text: {model: m, "
        "local_server: true, server_python: /nowhere/bin/python}\n"
    )
    r = subprocess.run(
        [str(AUTODRIVE), "build", "recipe.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert r.returncode == 2, r.stderr
    assert "server_python" in r.stderr and "/nowhere/bin/python does not exist" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "b").exists()
