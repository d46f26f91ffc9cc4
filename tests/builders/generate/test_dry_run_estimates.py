"""The model splits' stage stamp (a no-change rebuild does no work) and the dry run's
cost estimates: output tokens, GPU-hours from a recipe throughput, prompt tokens with a
local tokenizer."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from tests.builders.generate import test_model_splits as ms
from tests.doubles.scripted import ScriptedBackend
from vlm_autodrive.builders.generate.backends.base import Completion, GenerationResponse
from vlm_autodrive.builders.generate.config import GenerateConfig, ModelConfig, Throughput
from vlm_autodrive.builders.generate.estimate import gpu_hours, output_tokens, prompt_counter
from vlm_autodrive.builders.generate.report import format_reports
from vlm_autodrive.builders.generate.tasks import vqa

rule_build, build = ms.rule_build, ms.build  # the fixtures: a tiny build with rule splits
gen_config, run = ms.gen_config, ms.run


def test_a_no_change_rebuild_parses_nothing_and_rewrites_nothing(build, monkeypatch):
    first = run(build, ScriptedBackend())
    files = sorted((build / "data").rglob("*.parquet"))
    stat = {p: p.stat().st_mtime_ns for p in files}
    calls = []
    original = vqa.Vqa.parse

    def counting(self, *a, **kw):
        calls.append(1)
        return original(self, *a, **kw)

    again = run(build, ScriptedBackend())
    assert {p: p.stat().st_mtime_ns for p in files} == stat  # nothing rewritten
    assert [(r.requests, r.rows) for r in again.values()] == [
        (r.requests, r.rows) for r in first.values()
    ]
    assert all(r.sent == 0 and r.cached == r.requests for r in again.values())
    # A changed parser is a change: the stored responses are parsed again.
    monkeypatch.setattr(vqa.Vqa, "parse", counting)
    third = run(build, ScriptedBackend())
    assert len(calls) == third["vqa"].samples > 0 and third["vqa"].sent == 0


def test_the_stamp_key_is_the_same_in_every_process():
    code = (
        "from vlm_autodrive.builders.generate.stamp import parser_fingerprint\n"
        "from vlm_autodrive.builders.generate.tasks import MODEL_SPLITS\n"
        "print([parser_fingerprint(s) for s in MODEL_SPLITS.values()])"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    assert runs[0].stdout == runs[1].stdout and len(runs[0].stdout) > 100


def test_dry_run_output_tokens_and_gpu_hours_from_the_recipe_throughput(build):
    gen = gen_config().model_dump()
    gen["models"]["m"]["throughput"] = {"requests_per_s": 2.0, "gpus": 8}
    cold = run(build, ScriptedBackend(), dry_run=True, gen=GenerateConfig.model_validate(gen))
    v = cold["vqa"]
    # Nothing cached: max_tokens per sample, the upper bound.
    assert v.output_tokens_est == v.to_send * 1024 and "max_tokens" in v.output_tokens_from
    assert v.gpu_hours_est == pytest.approx(v.to_send / 2.0 * 8 / 3600)
    assert "GPU-hours" in format_reports(cold.values(), dry_run=True)
    run(build, ScriptedBackend())
    gen["configs"]["vqa"]["seed"] = 5  # every vqa request anew; the cache measures the mean
    again = run(build, ScriptedBackend(), dry_run=True, gen=GenerateConfig.model_validate(gen))
    v = again["vqa"]
    assert v.to_send == v.requests and v.cached == 0
    assert again["reasoning_vqa"].to_send == 0 and again["reasoning_vqa"].gpu_hours_est == 0


def test_output_tokens_are_the_mean_of_the_cached_samples():
    cached = [GenerationResponse("a", [Completion("x", None, "stop", 10)] * 2)]
    cached.append(GenerationResponse("b", [Completion("y", None, "stop", 20)] * 2))
    assert output_tokens(cached, 3, 2, 100) == (90, "output: mean of 4 cached samples")
    assert output_tokens([], 3, 2, 100)[0] == 600


def test_a_throughput_gives_exactly_one_rate():
    with pytest.raises(ValidationError, match="one of requests_per_s"):
        Throughput()
    with pytest.raises(ValidationError, match="one of requests_per_s"):
        Throughput(requests_per_s=1, output_tokens_per_s=10)
    cfg = ModelConfig(
        model="m", tensor_parallel_size=4, throughput={"output_tokens_per_s": 100.0}, backend="vllm"
    )
    assert gpu_hours(cfg, 10, 36_000) == pytest.approx(36_000 / 100 * 4 / 3600)
    assert gpu_hours(ModelConfig(model="m"), 10, 100) is None


def test_prompt_tokens_with_the_local_tokenizer(tmp_path):
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    from vlm_autodrive.builders.generate.backends.base import GenerationRequest

    req = GenerationRequest("r", [{"role": "user", "content": "a b a b zzzzzzzzzzzz"}])
    count, how = prompt_counter(ModelConfig(model=str(tmp_path)))
    assert count(req) == 5 and "tokenizer" in how
    count, how = prompt_counter(ModelConfig(model="hub/id"))
    assert count(req) == len("a b a b zzzzzzzzzzzz") // 4 and "4 characters" in how
