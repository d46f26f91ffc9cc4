"""Model backends against the real vLLM engine (CPU build) and a scripted HTTP server.

The engine tests need `.venv-vllm` (vLLM's CPU build, made by `make test` through
mk/vllm.mk) and are marked slow: one in-process engine run in a subprocess of that
environment, and one OpenAI-compatible server shared by all the `openai` tests. The fault
tests use `FakeOpenAIServer`, a real HTTP server on a loopback port with scripted answers.

About 400 lines: both backends against the stand-in and the real server share fixtures.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.doubles.fake_server import DEFAULT_ANSWER, FakeOpenAIServer
from vlm_autodrive.builders.core.errors import InputError
from vlm_autodrive.builders.generate.backends.base import GenerationRequest, Sampling
from vlm_autodrive.builders.generate.backends.common import fold_system_prompt
from vlm_autodrive.builders.generate.backends.local_server import LocalVLLMServer, free_port
from vlm_autodrive.builders.generate.backends.openai_backend import (
    BackendUnavailable,
    OpenAIBackend,
)

VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
needs_vllm = pytest.mark.skipif(
    not VLLM_PYTHON.exists(),
    reason=".venv-vllm is missing (vLLM's CPU build; `make .venv-vllm/.installed` makes it)",
)
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"enum": ["A", "B", "C"]}, "confidence": {"enum": [1, 2, 3]}},
    "required": ["answer", "confidence"],
    "additionalProperties": False,
}
MESSAGES = [
    {"role": "system", "content": "You label dashcam clips."},
    {"role": "user", "content": "A truck brakes hard in front of the ego car. Which class?"},
]


def req(rid: str, **sampling) -> GenerationRequest:
    return GenerationRequest(rid, MESSAGES, Sampling(**{"max_tokens": 8, **sampling}))


def check_json(text: str) -> dict:
    value = json.loads(text)
    assert set(value) == {"answer", "confidence"}
    assert value["answer"] in {"A", "B", "C"} and value["confidence"] in {1, 2, 3}
    return value


# -- helpers without a model ---------------------------------------------------------


def test_fold_system_prompt_moves_system_into_first_user_turn():
    folded = fold_system_prompt(MESSAGES)
    assert [m["role"] for m in folded] == ["user"]
    assert folded[0]["content"].startswith("You label dashcam clips.\n\nA truck")
    parts = [{"role": "system", "content": "S"}, {"role": "user", "content": [{"type": "text"}]}]
    assert fold_system_prompt(parts)[0]["content"][0] == {"type": "text", "text": "S\n\n"}
    assert MESSAGES[0]["role"] == "system"  # input untouched


# -- the real engine -----------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The tiny random Llama-style model, built once into build/test-models (kept)."""
    out = REPO / "build" / "test-models" / "tiny-llama"
    cmd = [
        str(VLLM_PYTHON),
        "-m",
        "vlm_autodrive.builders.synthetic.tiny_models",
        "--out",
        str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return out


@pytest.fixture(scope="module")  # stopped after this module: it holds ~3 GB
def vllm_server(tiny_model: Path, tmp_path_factory) -> LocalVLLMServer:
    """Started from a folder without .venv-vllm (its python is found from the project),
    its start's messages kept as `server.start_messages`."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    log = elsewhere / "server.log"
    server = LocalVLLMServer(tiny_model, max_model_len=256, dtype="float32", log_path=log)
    here, messages = Path.cwd(), io.StringIO()
    os.chdir(elsewhere)
    try:
        with contextlib.redirect_stderr(messages):
            server.start()
    finally:
        os.chdir(here)
    server.start_messages = messages.getvalue()
    with server:
        yield server


@pytest.mark.slow
@needs_vllm
def test_local_server_starts_from_any_folder_and_shows_its_wait(vllm_server: LocalVLLMServer):
    lines = vllm_server.start_messages.splitlines()
    assert vllm_server.python == REPO / ".venv-vllm" / "bin" / "python"
    assert lines[0] == (
        f"starting vLLM server for tiny-llama on {vllm_server.base_url} "
        f"(log: {vllm_server.log_path})"
    )
    assert re.fullmatch(r"vLLM server ready after \d+\.\d s", lines[-1])


TRANSFORMERS_CHECK = """
import sys
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
            {"role": "assistant", "content": "A"}, {"role": "user", "content": "V"}]
print(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
print(model.config.head_dim, model.config.num_hidden_layers, model.config.vocab_size == len(tok))
"""


@pytest.mark.slow
@needs_vllm
def test_tiny_model_loads_offline_and_rebuild_is_a_no_op(tiny_model: Path):
    weights = tiny_model / "model.safetensors"
    before = weights.stat().st_mtime_ns
    cmd = [
        str(VLLM_PYTHON),
        "-m",
        "vlm_autodrive.builders.synthetic.tiny_models",
        "--out",
        str(tiny_model),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    assert weights.stat().st_mtime_ns == before
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(
        [str(VLLM_PYTHON), "-c", TRANSFORMERS_CHECK, str(tiny_model)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nA<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nV<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n\n"
    )
    assert r.stdout.strip().endswith("64 2 True")


@pytest.mark.slow
@needs_vllm
def test_vllm_backend_in_process(tiny_model: Path, tmp_path: Path):
    out = tmp_path / "responses.json"
    script = REPO / "tests" / "builders" / "generate" / "vllm_inprocess_check.py"
    # One process: the engine core runs in it instead of two spawned ones (~20 s saved).
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    r = subprocess.run(
        [str(VLLM_PYTHON), str(script), str(tiny_model), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    got = json.loads(out.read_text())["responses"]
    assert len(got) == 48  # one response per request, failures included

    a, b, c = got["n2_seed7_a"], got["n2_seed7_b"], got["n2_seed8"]
    assert len(a["completions"]) == 2 and a["error"] is None and a["prompt_tokens"] > 0
    assert [x["text"] for x in a["completions"]] == [x["text"] for x in b["completions"]]
    assert a["completions"][0]["text"] != a["completions"][1]["text"]
    assert [x["text"] for x in a["completions"]] != [x["text"] for x in c["completions"]]
    assert all(x["completion_tokens"] > 0 for x in a["completions"])

    check_json(got["json"]["completions"][0]["text"])
    assert got["choice"]["completions"][0]["text"] in {"Collision", "Normal"}
    think = got["think"]["completions"][0]
    assert think["text"] in {"A", "B", "C"} and think["reasoning"]

    assert "maximum context length" in got["too_long"]["error"]
    assert not got["too_long"]["completions"]
    assert "constraint must be one of" in got["bad_constraint"]["error"]
    assert all(got[f"bulk{i}"]["error"] is None for i in range(40))


@pytest.mark.slow
@needs_vllm
def test_openai_backend_against_vllm_server(vllm_server: LocalVLLMServer):
    backend = OpenAIBackend(
        vllm_server.served_model_name, [vllm_server.base_url], timeout=60, max_retries=1
    )
    with backend:
        backend.check()
        requests = [
            req("a", temperature=1.0, top_p=0.95, n=2, seed=7, max_tokens=16),
            req("b", temperature=1.0, top_p=0.95, n=2, seed=7, max_tokens=16),
            req("c", temperature=1.0, top_p=0.95, n=2, seed=8, max_tokens=16),
            GenerationRequest("json", MESSAGES, Sampling(1.0, 1.0, 64, 1, 3), {"json": SCHEMA}),
            GenerationRequest(
                "think",
                MESSAGES,
                Sampling(1.0, 1.0, 32, 1, 3),
                {"regex": r"<think>[a-z ]{3,12}</think>\n\n(A|B|C)"},
            ),
            GenerationRequest(
                "long", [{"role": "user", "content": "word " * 600}], Sampling(max_tokens=8)
            ),
        ]
        got = {r.request_id: r for r in backend.generate(requests)}
    assert set(got) == {"a", "b", "c", "json", "think", "long"}
    a, b, c = got["a"], got["b"], got["c"]
    assert a.error is None and len(a.completions) == 2 and a.prompt_tokens > 0
    assert [x.text for x in a.completions] == [x.text for x in b.completions]
    assert [x.text for x in a.completions] != [x.text for x in c.completions]
    check_json(got["json"].completions[0].text)
    think = got["think"].completions[0]
    assert think.text in {"A", "B", "C"} and think.reasoning  # split at </think>
    # A 4xx is final: one try, and the server's reason is kept.
    assert got["long"].attempts == 1 and "maximum context length" in got["long"].error


@pytest.mark.slow
@needs_vllm
def test_reasoning_parser_branch_reads_the_servers_reasoning_field(tiny_model, tmp_path):
    """A server started with a reasoning parser (DeepSeek-R1's) returns the thinking in
    `message.reasoning`: the backend keeps it as the completion's reasoning and the
    answer text without it (the no-parser branch is the `think` request above). ~40 s."""
    server = LocalVLLMServer(
        tiny_model,
        max_model_len=256,
        dtype="float32",
        log_path=tmp_path / "server.log",
        reasoning_parser="deepseek_r1",
    )
    with server:
        backend = OpenAIBackend(
            server.served_model_name, [server.base_url], timeout=60, max_retries=1
        )
        with backend:
            (r,) = backend.generate([req("r", temperature=1.0, seed=3, max_tokens=16)])
    assert r.error is None, r.error
    (c,) = r.completions
    # A random model rarely closes its think block: everything it wrote is reasoning.
    assert c.reasoning and "</think>" not in (c.text or "")


@pytest.mark.slow
@needs_vllm
def test_openai_backend_names_a_model_the_server_lacks(vllm_server: LocalVLLMServer):
    with pytest.raises(InputError, match="does not serve the model 'other'"):
        OpenAIBackend("other", [vllm_server.base_url]).check()


# -- faults, with a scripted server --------------------------------------------------


def fast_backend(*urls: str, **kw) -> OpenAIBackend:
    opts = {"timeout": 5.0, "max_retries": 3, "backoff": 0.01, **kw}
    return OpenAIBackend("fake-model", list(urls), **opts)


def test_server_down_at_start_names_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(BackendUnavailable, match=url.replace(".", r"\.")):
        list(fast_backend(url).generate([req("x")]))


def test_5xx_then_ok_is_retried():
    with FakeOpenAIServer(fail_first=2) as server, fast_backend(server.base_url) as backend:
        (r,) = backend.generate([req("x", n=2)])
    assert (
        r.error is None
        and r.attempts == 3
        and [c.text for c in r.completions] == [f"{DEFAULT_ANSWER} (0)", f"{DEFAULT_ANSWER} (1)"]
    )
    assert server.bodies[-1]["n"] == 2


def test_always_5xx_becomes_a_failure_with_attempts():
    with FakeOpenAIServer(always_status=503) as server, fast_backend(server.base_url) as backend:
        (r,) = backend.generate([req("x")])
    assert r.attempts == 4 and "HTTP 503" in r.error and not r.completions


def test_4xx_is_not_retried_but_429_is():
    with FakeOpenAIServer(always_status=400) as server, fast_backend(server.base_url) as backend:
        (r,) = backend.generate([req("x")])
        assert r.attempts == 1 and "HTTP 400" in r.error
        server.always_status, server.fail_first, server.fail_status = None, 2, 429
        server.requests = 0
        (r,) = backend.generate([req("y")])
        assert r.error is None and r.attempts == 3


def test_hanging_server_times_out_into_failures():
    with FakeOpenAIServer(hang=True) as server:
        backend = fast_backend(server.base_url, timeout=0.5, max_retries=1)
        t0 = time.monotonic()
        with backend:
            got = list(backend.generate([req(f"r{i}") for i in range(5)]))
        assert time.monotonic() - t0 < 10
    assert len(got) == 5 and all(r.error and r.attempts == 2 for r in got)
    assert all("Timeout" in r.error for r in got)


def test_reasoning_is_read_from_either_field_or_split_at_think():
    for fields in ({"reasoning_field": "reasoning"}, {"reasoning_field": "reasoning_content"}):
        with FakeOpenAIServer(**fields) as server, fast_backend(server.base_url) as backend:
            (r,) = backend.generate([req("x")])
        assert (r.completions[0].reasoning, r.completions[0].text) == (
            "reasoning 0",
            f"{DEFAULT_ANSWER} (0)",
        )
    with FakeOpenAIServer(think_inline=True) as server, fast_backend(server.base_url) as backend:
        (r,) = backend.generate([req("x")])
    assert (r.completions[0].reasoning, r.completions[0].text) == ("reasoning 0", "answer 0")


def test_requests_round_robin_over_replicas_and_structured_outputs_are_sent():
    with FakeOpenAIServer() as s1, FakeOpenAIServer() as s2:
        backend = fast_backend(s1.base_url, s2.base_url, fold_system_prompt=True)
        with backend:
            requests = [
                GenerationRequest(f"r{i}", MESSAGES, Sampling(seed=i), {"json": SCHEMA})
                for i in range(10)
            ]
            got = list(backend.generate(requests))
    assert len(got) == 10 and all(r.error is None for r in got)
    assert s1.requests == 5 and s2.requests == 5
    body = s1.bodies[0]
    assert body["structured_outputs"] == {"json": SCHEMA}
    assert [m["role"] for m in body["messages"]] == ["user"]  # system prompt folded
    assert "seed" in body


def test_server_killed_mid_run_turns_the_rest_into_failures(tmp_path: Path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.doubles.fake_server", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().startswith("listening")
        backend = fast_backend(f"http://127.0.0.1:{port}/v1", max_concurrency=4, max_retries=2)
        got = []
        t0 = time.monotonic()
        with backend:
            for r in backend.generate([req(f"r{i}") for i in range(40)]):
                got.append(r)
                if len(got) == 8:
                    proc.kill()
        elapsed = time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()
    assert len(got) == 40 and len({r.request_id for r in got}) == 40
    ok = [r for r in got if r.error is None]
    failed = [r for r in got if r.error]
    assert len(ok) >= 8 and failed and all(r.attempts == 3 for r in failed)
    assert elapsed < 20


# -- the factory: what each backend is given -----------------------------------------


def test_factory_lets_both_backends_read_the_clips_and_passes_every_key(tmp_path, monkeypatch):
    from contextlib import ExitStack

    from vlm_autodrive.builders.generate.backends import factory, local_server, vllm_backend
    from vlm_autodrive.builders.generate.config import ModelConfig

    seen: dict = {}

    class Engine:
        def __init__(self, model, **kw):
            seen["vllm"] = kw

        def close(self):
            pass

    class Server:
        def __init__(self, model, **kw):
            seen["server"] = kw
            self.base_url = "http://127.0.0.1:1/v1"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr(vllm_backend, "VLLMBackend", Engine)
    monkeypatch.setattr(local_server, "LocalVLLMServer", Server)
    monkeypatch.setattr(OpenAIBackend, "check", lambda self: None)
    args = {"limit_mm_per_prompt": {"image": 0, "video": 1}}
    with ExitStack() as stack:
        cfg = ModelConfig(backend="vllm", model="m", engine_args=args)
        factory.open_backend(cfg, stack, media_dir=tmp_path)
        cfg = ModelConfig(
            model="m", local_server=True, revision="abc", tensor_parallel_size=2, engine_args=args
        )
        factory.open_backend(cfg, stack, media_dir=tmp_path)
    assert seen["vllm"]["allowed_local_media_path"] == str(tmp_path.resolve())
    assert seen["vllm"]["limit_mm_per_prompt"] == args["limit_mm_per_prompt"]
    extra = seen["server"]["extra_args"]
    assert extra[extra.index("--allowed-local-media-path") + 1] == str(tmp_path.resolve())
    assert extra[extra.index("--revision") + 1] == "abc"
    assert extra[extra.index("--tensor-parallel-size") + 1] == "2"
