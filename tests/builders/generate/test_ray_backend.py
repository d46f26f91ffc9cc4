"""`backend: ray`: the cache misses through ray.data.llm's HttpRequestProcessorConfig.

Against the fake OpenAI server (a real HTTP server on a loopback port, fixed latency)
answering as a good model would (`ScriptedBackend`'s answers, with the request's seed in
the captions), through the real factory and stage. One local Ray session for the module
(2 CPUs, no dashboard), stopped after. About 2 min on 2 busy cores (Ray's start, its
HTTP actors' start per split, and a build killed and resumed in a subprocess).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO
from tests.doubles.fake_server import FakeOpenAIServer
from tests.doubles.scripted import ScriptedBackend
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.generate.backends.base import GenerationRequest
from vlm_autodrive.builders.generate.config import GenerateConfig
from vlm_autodrive.builders.generate.stage import run_model_splits

ray = pytest.importorskip("ray", reason="the ray extra: pip install 'vlm-autodrive[ray]'")

from tests.builders.generate.test_model_splits import rule_build  # noqa: E402, F401

TAX = load_taxonomy()
SPLITS = ("vqa", "reasoning_mcq", "reasoning_vqa", "failures")


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}},
    )
    yield
    ray.shutdown()


def scripted_answer(body: dict, i: int) -> str:
    """ScriptedBackend's answer to the request; captions carry the seed and sample."""
    req = GenerationRequest("", body["messages"], constraint=body.get("structured_outputs"))
    text = ScriptedBackend()._answer(req)
    return f"{text} seed {body.get('seed')} sample {i}" if not req.constraint else text


def gen(backend: str, url: str, **ray_cfg) -> GenerateConfig:
    model = {"backend": backend, "model": "fake-model", "revision": "1", "base_urls": [url]}
    model["max_retries"] = 1
    if backend == "ray":
        model["ray"] = {"replicas": 2, "batch_size": 4, **ray_cfg}
    return GenerateConfig.model_validate(
        {
            "models": {"m": model},
            "configs": {
                "vqa": {"model": "m"},
                "reasoning_mcq": {"model": "m", "n": 2, "temperature": 0.6, "seed": 1},
                "reasoning_vqa": {"model": "m"},
            },
        }
    )


def rows(build: Path) -> dict[str, list[dict]]:
    out = {}
    for config in SPLITS:
        files = sorted((build / "data" / config).glob("*.parquet"))
        out[config] = sorted(
            (r for f in files for r in pq.read_table(f).to_pylist()), key=lambda r: r["id"]
        )
    return out


def copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_ray_gives_the_rows_of_the_openai_backend(rule_build, tmp_path):  # noqa: F811
    a, b = copy(rule_build, tmp_path / "a"), copy(rule_build, tmp_path / "b")
    with FakeOpenAIServer(delay=0.02, answer=scripted_answer) as server:
        ra = run_model_splits(a, gen("openai", server.base_url), TAX, progress=False)
        sent_a = sorted(json.dumps(x, sort_keys=True) for x in server.bodies)
        server.bodies.clear()
        rb = run_model_splits(b, gen("ray", server.base_url), TAX, progress=False)
        sent_b = sorted(json.dumps(x, sort_keys=True) for x in server.bodies)
    assert sent_a == sent_b  # the very same requests, seeds included
    first, second = rows(a), rows(b)
    assert first == second and len(first["vqa"]) > 0 and len(first["reasoning_mcq"]) > 0
    assert [(r.name, r.kept, r.samples, r.failed) for r in ra] == [
        (r.name, r.kept, r.samples, r.failed) for r in rb
    ]
    # A rebuild is served from the driver's cache: nothing goes to Ray or the server.
    with FakeOpenAIServer(answer=scripted_answer) as server:
        again = run_model_splits(b, gen("ray", server.base_url), TAX, progress=False)
        assert server.requests == 0 and all(r.sent == 0 for r in again)


def test_failed_requests_are_error_failures_and_are_sent_again(rule_build, tmp_path):  # noqa: F811
    build = copy(rule_build, tmp_path / "b")
    with FakeOpenAIServer(always_status=503) as server:
        reports = run_model_splits(build, gen("ray", server.base_url), TAX, progress=False)
    for r in reports:
        assert r.kept == 0 and r.failed == {"error": r.samples} and r.samples > 0
    fails = rows(build)["failures"]
    assert {f["kind"] for f in fails} == {"error"}
    assert all(f["attempts"] == 2 and "HTTP 503" in f["reason"] for f in fails)
    with FakeOpenAIServer(answer=scripted_answer) as server:
        fixed = run_model_splits(build, gen("ray", server.base_url), TAX, progress=False)
        assert server.requests == sum(r.requests for r in fixed)
    assert all(r.failed.get("error", 0) == 0 for r in fixed)


def _cached(build: Path) -> int:
    path = build / "cache" / "responses.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=1) as db:
            return db.execute("SELECT COUNT(DISTINCT key) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_a_killed_driver_resumes_sending_only_what_is_missing(rule_build, tmp_path):  # noqa: F811
    """kill -9 of the driver mid-split (its Ray job dies with it), then a re-run: ~25 s."""
    build = copy(rule_build, tmp_path / "b")
    with FakeOpenAIServer(delay=0.3, answer=scripted_answer) as server:
        cfg = gen("ray", server.base_url, replicas=1, batch_size=2)
        script = (
            "import sys, json; from pathlib import Path\n"
            "from vlm_autodrive.builders.core.taxonomy import load_taxonomy\n"
            "from vlm_autodrive.builders.generate.config import GenerateConfig\n"
            "from vlm_autodrive.builders.generate.stage import run_model_splits\n"
            "cfg = GenerateConfig.model_validate(json.loads(sys.argv[2]))\n"
            "run_model_splits(Path(sys.argv[1]), cfg, load_taxonomy(), progress=False)\n"
        )
        address = ray.get_runtime_context().gcs_address
        env = {**os.environ, "RAY_ADDRESS": address, "PYTHONPATH": str(REPO)}
        driver = subprocess.Popen(
            [sys.executable, "-c", script, str(build), cfg.model_dump_json()],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while _cached(build) < 3 and time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.2)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        kept_before = _cached(build)
        assert kept_before >= 3
        time.sleep(2)  # the killed job's actors stop with it
        first_run = server.requests
        reports = run_model_splits(build, cfg, TAX, progress=False)
        resent = server.requests - first_run
    total = sum(r.requests for r in reports)
    assert sum(r.cached for r in reports) >= kept_before
    assert resent == total - sum(r.cached for r in reports) and resent < total
    out = rows(build)
    for config, got in out.items():
        assert len({r["id"] for r in got}) == len(got), f"{config}: duplicate rows"
    for r in reports:
        assert r.samples == r.kept + sum(r.failed.values())
