"""The splits beyond the paper on a real engine: SmolLM2-135M-Instruct served by vLLM's
CPU build on 127.0.0.1 (`local_server: true`), with the real constraints (the short_qa
JSON schema through xgrammar, the answer regex), the stage in this process.

What a 135M model writes is mostly filtered; the test checks what must hold whatever it
writes: counts conserved, no backend errors, the constraints obeyed, every filtered
reasoning_mcq trace offered to the reviser, every cause question asked, and a rebuild
served from the cache. Slow: 105 s on a shared 2-core machine (server start included).
"""

from __future__ import annotations

import re

import pyarrow.parquet as pq
import pytest

from tests.builders.generate.test_real_engines import (  # noqa: F401 (fixtures)
    SMOLLM2_ENGINE,
    VLLM_PYTHON,
    copy_build,
    no_backend,
    rule_build,
    smollm2,
)
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.dataset.folder import data_files
from vlm_autodrive.builders.generate.config import GenerateConfig
from vlm_autodrive.builders.generate.stage import run_model_splits
from vlm_autodrive.builders.generate.tasks.reasoning_mcq import answer_regex
from vlm_autodrive.builders.rules.config import RuleSplitsConfig
from vlm_autodrive.builders.rules.stage import build_rule_splits

TAX = load_taxonomy()
NEW = ("reasoning_revised", "short_qa", "caption_augmented", "cause_reasoning")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not VLLM_PYTHON.exists(), reason=".venv-vllm is missing"),
]


def table(build, config):
    out = []
    for rel in data_files(build, config).values():
        if (build / rel).exists():
            out += pq.read_table(build / rel).to_pylist()
    return out


def test_new_splits_on_smollm2_through_a_local_vllm_server(smollm2, rule_build, tmp_path):  # noqa: F811
    build = copy_build(rule_build, tmp_path / "build")
    rules = RuleSplitsConfig(
        configs=["mcq", "caption_metadata", "cause_vqa"],
        test_per_class=1,
        on_short="take_available",
    )
    build_rule_splits(build, rules, TAX, {}, force=True)
    text = {
        "model": str(smollm2),
        "local_server": True,
        "max_model_len": 2048,
        "engine_args": SMOLLM2_ENGINE,
    }
    reasoning = {"model": "reasoning", "temperature": 0.6, "top_p": 0.95, "max_tokens": 160}
    gen = GenerateConfig.model_validate(
        {
            "models": {"text": text, "reasoning": {**text, "fold_system_prompt": True}},
            "configs": {
                "reasoning_mcq": {**reasoning, "n": 2},
                "reasoning_revised": {**reasoning, "check": {"model": "text", "max_tokens": 16}},
                "short_qa": {"model": "text", "temperature": 0.2, "max_tokens": 320},
                "caption_augmented": {
                    "model": "text",
                    "temperature": 0.7,
                    "n": 2,
                    "max_tokens": 160,
                },
                "cause_reasoning": reasoning,
            },
        }
    )
    reports = {r.name: r for r in run_model_splits(build, gen, TAX, progress=False)}
    fails = table(build, "failures")
    for name in ("reasoning_mcq", *NEW):
        r = reports[name]
        assert r.samples == r.kept + sum(r.failed.values()), name
        assert "error" not in r.failed, [f["reason"] for f in fails if f["kind"] == "error"]
    wrong = {
        (f["clip_id"], f["raw_output"])
        for f in fails
        if f["config"] == "reasoning_mcq" and f["kind"] == "filtered"
    }
    assert reports["reasoning_revised"].samples == len(wrong)
    assert reports["cause_reasoning"].clips == len(table(build, "cause_vqa")) > 0
    assert reports["short_qa"].sent == reports["short_qa"].clips > 0
    assert reports["caption_augmented"].samples == 2 * reports["caption_augmented"].clips
    # the constraints held: whitespace-free JSON of pairs, the think block then the answer
    short = [f["raw_output"] for f in fails if f["config"] == "short_qa"]
    assert all(o.startswith('{"pairs":[{') for o in short), short
    # (a trace that reached the answer comes back split at </think>: the reasoning apart)
    think = re.compile(answer_regex("ABCDE", with_think=True))
    answer = re.compile(answer_regex("ABCDE", with_think=False))
    for f in fails:
        if f["config"] == "cause_reasoning":
            o = f["raw_output"]
            whole = think.fullmatch(o) or (answer.fullmatch(o) and f["reasoning"])
            assert whole or (o.startswith("<think>\n") and "</answer>" not in o), f
    for row in table(build, "reasoning_revised"):
        assert row["revised"] and row["revises"] in {f["id"] for f in fails}
    # a rebuild is served from the cache: no server started, the same rows
    before = {c: table(build, c) for c in (*NEW, "failures")}
    again = run_model_splits(build, gen, TAX, open_backend=no_backend, progress=False)
    assert all(r.sent == 0 for r in again)
    assert {c: table(build, c) for c in before} == before
