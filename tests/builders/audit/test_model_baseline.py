"""The text-only model baseline on a real engine: SmolLM2-135M-Instruct served by vLLM's
CPU build on 127.0.0.1 (`local_server: true`), asked every test question of the build's
multiple-choice configs with its options and no video, the answer constrained to the
option letters. A 135M model's accuracy means little; the test checks what must hold:
every test question asked and answered with one of its letters, scored per config and
class beside the other baselines, the model named in the report. Slow (server start)."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from tests.builders.audit.test_blind import _plant, _vqa_rows
from tests.builders.generate.test_real_engines import (  # noqa: F401 (fixtures)
    SMOLLM2_ENGINE,
    VLLM_PYTHON,
    smollm2,
)
from tests.builders.small_builds import rule_build
from vlm_autodrive.builders.audit.model import backend_answerer, blind_prompt, parse_letter
from vlm_autodrive.builders.audit.stage import run_audit
from vlm_autodrive.builders.generate.backends.factory import open_backend
from vlm_autodrive.builders.generate.config import ModelConfig


def test_prompt_lists_options_and_letters_are_parsed():
    assert blind_prompt("Which road?", ["highway", "street"]) == (
        "Which road?\nA. highway\nB. street\nAnswer with one letter (A, B)."
    )
    listed = "Which road?\nA. highway\nB. street"
    assert blind_prompt(listed, ["highway", "street"]).count("A. highway") == 1
    assert parse_letter(" B", 3) == "B"
    assert parse_letter("I think D.", 3) is None  # not an option of three
    assert parse_letter("A car drives", 2) == "A"


@pytest.mark.slow
@pytest.mark.skipif(not VLLM_PYTHON.exists(), reason=".venv-vllm is missing")
def test_smollm2_answers_every_test_question_without_the_video(smollm2, tmp_path):  # noqa: F811
    build = rule_build(tmp_path / "build", videos=30)
    _plant(build, "vqa_named", _vqa_rows("named", videos=12, per_video=2))
    cfg = ModelConfig(
        model=str(smollm2), local_server=True, max_model_len=2048, engine_args=SMOLLM2_ENGINE
    )
    asked = []
    with ExitStack() as stack:
        backend = open_backend(cfg, stack, log_dir=build / "logs")
        ask = backend_answerer(backend)

        def counting(items):
            answers = ask(items)
            asked.append((len(items), answers))
            return answers

        counting.model_id = ask.model_id
        report = run_audit(build, perceptual=False, plots=False, ask=counting)
    model = [b for b in report.baselines if b.baseline == "text_model"]
    assert {b.config for b in model} == {"mcq", "vqa_named"}
    for n, answers in asked:
        assert len(answers) == n and all(a in ("A", "B", "C", "D") for a in answers)
    tests = {b.config: b.rows for b in report.baselines if b.label == "all"}
    assert sum(n for n, _ in asked) == sum(tests[c] for c in ("mcq", "vqa_named"))
    assert all(0 <= b.low <= b.accuracy <= b.high <= 1 for b in model)
    assert (
        str(smollm2.name) in report.settings["text_model_baseline"]
        or "run (" in (report.settings["text_model_baseline"])
    )
