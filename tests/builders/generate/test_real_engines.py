"""The model-splits stage end to end on real engines (vLLM's CPU build), both backends.

- the text splits (vqa, reasoning_mcq, reasoning_vqa) on SmolLM2-135M-Instruct, a real
  small chat model, with the real structured-output constraints (JSON schemas, the answer
  regex with its think block: the no-reasoning-parser branch);
- the caption_vlm split on the tiny random Qwen2.5-VL (its captions are noise), the
  clips read by the engine or the server from the build folder, and the kept captions
  reaching the reasoning prompts.

Each runs the stage in a subprocess of `.venv-vllm` (tests/builders/generate/
stage_check.py), once with `backend: vllm` (in process) and once with a local server
(`backend: openai`, `local_server: true`). All slow; timings on a 2-core machine are in
each test's docstring. The models are built once into build/test-models (kept).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO
from vlm_autodrive.builders.clips.stage import run_chunk
from vlm_autodrive.builders.core.sections import ChunkConfig
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.dataset.folder import data_files
from vlm_autodrive.builders.generate.config import GenerateConfig
from vlm_autodrive.builders.generate.degenerate import REASONS
from vlm_autodrive.builders.generate.stage import run_model_splits
from vlm_autodrive.builders.generate.tasks.reasoning_mcq import answer_regex
from vlm_autodrive.builders.ingest.stage import run_ingest
from vlm_autodrive.builders.rules.config import RuleSplitsConfig
from vlm_autodrive.builders.rules.stage import build_rule_splits
from vlm_autodrive.builders.synthetic.sample import generate_sample

VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
MODELS = REPO / "build" / "test-models"
CHECK = REPO / "tests" / "builders" / "generate" / "stage_check.py"
TAX = load_taxonomy()
# What vLLM's CPU build needs for SmolLM2 (builders/synthetic/smollm2.py ENGINE_KWARGS).
SMOLLM2_ENGINE = {
    "dtype": "float32",
    "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True},
}
BACKENDS = ["vllm", "local_server"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not VLLM_PYTHON.exists(),
        reason=".venv-vllm is missing (vLLM's CPU build; `make .venv-vllm/.installed`)",
    ),
]


def built(module: str, out: Path, *extra: str) -> Path:
    cmd = [str(VLLM_PYTHON), "-m", f"vlm_autodrive.builders.synthetic.{module}", "--out"]
    subprocess.run([*cmd, str(out), *extra], check=True, capture_output=True, timeout=900)
    return out


@pytest.fixture(scope="session")
def smollm2() -> Path:
    return built("smollm2", MODELS / "smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_vlm() -> Path:
    return built("tiny_models", MODELS / "tiny-qwen2_5_vl", "--kind", "vlm")


@pytest.fixture(scope="module")
def rule_build(tmp_path_factory) -> Path:
    """3 videos of 8 s -> 6 clips with their rule configs."""
    root = tmp_path_factory.mktemp("real")
    manifest = generate_sample(root / "sample", 3, seed=2, duration=8.0, width=112, height=84)
    build = root / "build"
    run_ingest(manifest, build, TAX, progress=False)
    run_chunk(build, ChunkConfig(window=4, stride=3.5, mode="copy"), TAX, progress=False)
    build_rule_splits(build, RuleSplitsConfig(test_per_class=1, on_short="take_available"), TAX, {})
    return build


def model(path: Path, kind: str, **kw) -> dict:
    base = {"model": str(path), "max_model_len": 2048, **kw}
    return {**base, "backend": "vllm"} if kind == "vllm" else {**base, "local_server": True}


def stage(build: Path, gen: dict, tmp_path: Path) -> dict:
    """The stage in `.venv-vllm`: its reports by split and the prompts it sent."""
    (tmp_path / "gen.json").write_text(json.dumps(gen))
    out = tmp_path / "out.json"
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}  # one process, ~20 s less
    r = subprocess.run(
        [str(VLLM_PYTHON), str(CHECK), str(build), str(tmp_path / "gen.json"), str(out)],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=REPO,
        env=env,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    got = json.loads(out.read_text())
    return {"reports": {x["name"]: x for x in got["reports"]}, "prompts": got["prompts"]}


def table(build: Path, config: str) -> list[dict]:
    out = []
    for rel in data_files(build, config).values():  # train, then test
        out += pq.read_table(build / rel).to_pylist()
    return out


def copy_build(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def no_backend(cfg, stack):
    raise AssertionError("a fully cached rebuild opened a backend")


@pytest.mark.parametrize("kind", BACKENDS)
def test_text_splits_on_smollm2_with_real_constraints(kind, smollm2, rule_build, tmp_path):
    """Every text split on SmolLM2 through one backend; a rebuild sends nothing.
    Measured on a shared 2-core machine: 257 s in process, 59 s with the local server
    (the load of other jobs varied; engine or server start ~30 s)."""
    build = copy_build(rule_build, tmp_path / "build")
    text = model(smollm2, kind, engine_args=SMOLLM2_ENGINE)
    gen = {
        "models": {"text": text, "reasoning": {**text, "fold_system_prompt": True}},
        "configs": {
            "vqa": {"model": "text", "temperature": 0.2, "max_tokens": 320},
            "reasoning_mcq": {
                "model": "reasoning",
                "temperature": 0.6,
                "top_p": 0.95,
                "n": 2,
                "max_tokens": 160,
            },
            "reasoning_vqa": {"model": "reasoning", "temperature": 0.6, "max_tokens": 256},
        },
    }
    got = stage(build, gen, tmp_path)
    reports = got["reports"]
    clips = len(table(build, "caption_metadata"))
    fails = table(build, "failures")
    for name in ("vqa", "reasoning_mcq", "reasoning_vqa"):
        r = reports[name]
        assert r["requests"] == r["clips"] == r["sent"] == clips, name
        assert r["samples"] == r["kept"] + sum(r["failed"].values()), name
        assert "error" not in r["failed"], [f["reason"] for f in fails if f["kind"] == "error"]
        assert r["completion_tokens"] > 0
    # The constraints held: whitespace-free JSON from its first character, the think block
    # then the answer tags, or a cut at max_tokens.
    outputs = {name: [f["raw_output"] for f in fails if f["config"] == name] for name in reports}
    assert all(o.startswith('{"questions":[{') for o in outputs["vqa"])
    assert all(o.startswith('{"question":') for o in outputs["reasoning_vqa"])
    think = re.compile(answer_regex("ABC", with_think=True))
    for o in outputs["reasoning_mcq"]:
        assert think.fullmatch(o) or (o.startswith("<think>\n") and "</answer>" not in o), o
    for f in fails:  # SmolLM2 writes English, not noise, where it writes prose
        if f["config"] == "reasoning_mcq" and f["kind"] == "filtered":
            assert re.search(r"\b(the|car|vehicle|road)\b", f["raw_output"], re.I)
    vqa_rows = table(build, "vqa")
    assert len(vqa_rows) == reports["vqa"]["rows"]
    assert all(r["question"].strip() and r["answer"][0] in "ABCD" for r in vqa_rows)
    # A rebuild is served from the cache (no backend is opened) and writes the same rows.
    before = {c: table(build, c) for c in ("vqa", "reasoning_mcq", "reasoning_vqa", "failures")}
    again = run_model_splits(
        build, GenerateConfig.model_validate(gen), TAX, open_backend=no_backend, progress=False
    )
    assert all(r.sent == 0 for r in again)
    assert {c: table(build, c) for c in before} == before


@pytest.mark.parametrize("kind", BACKENDS)
def test_vlm_captions_on_the_tiny_vlm_reach_the_reasoning_prompts(
    kind, tiny_vlm, rule_build, tmp_path
):
    """caption_vlm on the tiny random Qwen2.5-VL through one backend, the clips read from
    the build folder (no `error` failures: every request got an answer); the captions it
    kept are in the reasoning prompts (answered by the scripted backend); the rest are
    failures naming why (the random model writes byte noise, so few or none are kept: the
    way a kept caption reaches the prompts is also tested with the scripted model, in
    test_degenerate_outputs.py). Both backends together: 37 s on 2 cores."""
    build = copy_build(rule_build, tmp_path / "build")
    vlm = model(
        tiny_vlm,
        kind,
        engine_args={
            "limit_mm_per_prompt": {"image": 0, "video": 1},
            "media_io_kwargs": {"video": {"fps": 2}},
        },
    )
    gen = {
        "models": {"vlm": vlm, "m": {"model": "scripted", "revision": "1"}},
        "configs": {
            # 2 of 456 tokens end the random model's answer: most stop within 256 tokens.
            "caption_vlm": {"model": "vlm", "temperature": 1.0, "max_tokens": 256},
            "reasoning_mcq": {"model": "m"},
        },
    }
    got = stage(build, gen, tmp_path)
    r = got["reports"]["caption_vlm"]
    assert r["sent"] == r["requests"] == r["clips"] > 0
    assert "error" not in r["failed"], [f["reason"] for f in table(build, "failures")]
    captions = table(build, "caption_vlm")
    # The random model samples bytes of a byte-level vocabulary: most captions hold control
    # characters or broken UTF-8, which are refused (and kept raw) with the reason.
    fails = [f for f in table(build, "failures") if f["config"] == "caption_vlm"]
    assert len(captions) + len(fails) == r["samples"]
    known = ("control character", "invalid Unicode", "cut off", *REASONS)
    assert all(f["reason"].startswith(known) for f in fails), {f["reason"] for f in fails}
    mcq_prompts = [p for p in got["prompts"].values() if "A quick first impression" in p]
    for row in captions:
        assert any(row["answer"] in " ".join(p.split()) for p in mcq_prompts), row["answer"]
    assert len(mcq_prompts) == len(captions)  # clips without a caption get none
