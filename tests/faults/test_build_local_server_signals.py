"""`autodrive build` with a local model server (`local_server: true`), hit by SIGINT,
SIGTERM and SIGKILL once the server answers: the server and the engine process it
started end with the build (a watchdog stops their group after a kill -9), the lock is
free, and the same command finishes with a clean run's rows.

The server is tests/doubles/fake_vllm_python.py standing in for vLLM's python (real
processes, real HTTP; it starts an "engine" child as vLLM does). Also: a server that
drips its answer, through `autodrive build`. About 70 s on 2 cores busy with other work
(load 8); SIGTERM and SIGINT (slow) 55 s more. The same with the real vLLM CPU server is
the slow test at the end (skipped without .venv-vllm).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.faults.harness import (
    SIGNALS,
    autodrive_env,
    check_stopped,
    digest,
    hurt,
    lock_is_free,
    run,
)

FAKE = REPO / "tests" / "doubles" / "fake_vllm_python.py"
FAKE_ENV = {"FAKE_VLLM_DELAY": "0.3", "FAKE_VLLM_ANSWER_DELAY": "0.15", "FAKE_VLLM_ENGINE": "1"}


def cached(build: Path) -> int:
    try:
        with sqlite3.connect(build / "cache" / "responses.sqlite", timeout=0.1) as db:
            return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.Error:
        return 0


def write_recipe(
    root: Path,
    shared: Path,
    python: Path,
    model: Path,
    timeout: float = 60,
    url: str = "",
    concurrency: int = 2,
) -> Path:
    """caption_vlm on the shared sample; by a local server, or by the server at `url`."""
    local = f"local_server: true, server_python: {python}"
    where = f"base_urls: [{url}], max_retries: 1" if url else local
    recipe = root / "recipe.yaml"
    root.mkdir(parents=True, exist_ok=True)
    recipe.write_text(
        textwrap.dedent(f"""\
        manifest: {shared}/sample/manifest.jsonl
        build_dir: {root}/build
        sample: {{videos: 4, duration: 8.0, width: 96, height: 64, fps: 10.0, gop: 10}}
        chunk: {{window: 2.0, stride: 1.0, margin: 0.5, mode: copy, workers: 2}}
        rules: {{test_per_class: 1, on_short: take_available}}
        generate:
          models:
            vlm: {{model: {model}, {where}, max_concurrency: {concurrency}, timeout: {timeout}}}
          configs:
            caption_vlm: {{model: vlm}}
        """)
    )
    return recipe


def run_with_fake(args: list) -> subprocess.CompletedProcess:
    """`autodrive ARGS` to the end, with the fake server's settings."""
    return run(args, env=autodrive_env("clean-" + uuid.uuid4().hex, FAKE_ENV))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The shared sample and model folder, a fake vLLM python, and a clean run's files."""
    shared = tmp_path_factory.mktemp("local-server")
    python = shared / "fake-vllm" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    python.chmod(0o755)
    model = shared / "models" / "tiny"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}\n")  # the recipe check wants model files
    clean = write_recipe(shared / "clean", shared, python, model)
    done = run_with_fake(["build", clean])
    assert done.returncode in (0, 3), done.stdout + done.stderr  # 3: some clips rejected
    return shared, python, model, done.returncode, digest(shared / "clean" / "build" / "data")


@pytest.mark.parametrize(
    "sig",
    ["SIGKILL", *(pytest.param(s, marks=pytest.mark.slow) for s in ("SIGTERM", "SIGINT"))],
)
def test_build_with_a_local_server_survives_a_signal(setup, tmp_path, sig):
    shared, python, model, code, clean = setup
    recipe = write_recipe(tmp_path, shared, python, model)
    build = tmp_path / "build"
    h = hurt(["build", recipe], SIGNALS[sig], lambda: cached(build) >= 3, env_extra=FAKE_ENV)
    check_stopped(h, SIGNALS[sig])
    assert lock_is_free(build)
    again = run_with_fake(["build", recipe])
    assert again.returncode == code, again.stdout + again.stderr
    assert digest(build / "data") == clean


VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"


@pytest.mark.slow
@pytest.mark.skipif(not VLLM_PYTHON.exists(), reason=".venv-vllm is missing (vLLM's CPU build)")
def test_kill_9_of_a_build_leaves_no_real_vllm_server(tmp_path):
    """The real vLLM CPU server on a tiny random Llama: kill -9 of the build once the
    server answered; within its stop grace, no process of it is left. About 2 min on
    2 cores (the server's start)."""
    models = REPO / "build" / "test-models"
    tiny = models / "tiny-llama"
    cmd = [str(VLLM_PYTHON), "-m", "vlm_autodrive.builders.synthetic.tiny_models", "--out"]
    subprocess.run([*cmd, str(tiny)], check=True, capture_output=True, timeout=900)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        textwrap.dedent(f"""\
        manifest: {tmp_path}/sample/manifest.jsonl
        build_dir: {tmp_path}/build
        sample: {{videos: 3, duration: 6.0, width: 96, height: 64, fps: 10.0, gop: 10}}
        chunk: {{window: 2.0, stride: 1.0, margin: 0.5, mode: copy, workers: 2}}
        rules: {{test_per_class: 1, on_short: take_available}}
        generate:
          models:
            text: {{model: {tiny}, local_server: true, max_model_len: 1024, max_concurrency: 1}}
          configs:
            vqa: {{model: text}}
        """)
    )
    build = tmp_path / "build"
    h = hurt(["build", recipe], SIGNALS["SIGKILL"], lambda: cached(build) >= 1, timeout=600)
    check_stopped(h, SIGNALS["SIGKILL"])
    assert lock_is_free(build)
    shutil.rmtree(tmp_path / "sample", ignore_errors=True)


def test_a_dripping_server_ends_as_counted_errors_and_a_rerun_resends_only_those(setup, tmp_path):
    """The issue's case through `autodrive build`: a server that sends its headers, then a
    byte at a time. Every request ends as an `error` failure within its deadline (timeout
    1 s, 1 retry); with the server well again, the same command resends those requests
    only and ends with a clean run's rows."""
    import pyarrow.parquet as pq

    from tests.doubles.misbehaving_server import MisbehavingServer
    from vlm_autodrive.builders.dataset.folder import data_files

    shared, python, model, code, clean = setup
    with MisbehavingServer(mode="drip", drip_every=0.3, model=str(model)) as server:
        recipe = write_recipe(tmp_path, shared, python, model, 1, server.base_url, 16)
        build = tmp_path / "build"
        start = time.monotonic()
        hurt_run = run(["build", recipe])
        elapsed = time.monotonic() - start
        assert hurt_run.returncode == 3, hurt_run.stdout + hurt_run.stderr
        failures = []
        for rel in data_files(build, "failures").values():
            failures += pq.read_table(build / rel).to_pylist()
        assert failures and all(f["kind"] == "error" for f in failures)
        assert all("no whole answer within 1 s" in f["reason"] for f in failures)
        assert server.chat_requests == 2 * len(failures)  # 1 try + 1 retry each, no more
        assert elapsed < 60, f"{elapsed:.0f} s"
        server.mode, server.chat_requests = "ok", 0
        again = run(["build", recipe])
        assert again.returncode == code, again.stdout + again.stderr
        assert server.chat_requests == len(failures)  # only those are sent again
    assert digest(build / "data") == clean
