"""`autodrive train` with a GRPO recipe end to end on the CPU: a built sample's MCQ train
prompts, the tiny random Qwen2.5-VL, real generations rewarded by the eval's parser, a
resumed run, and `autodrive eval` on the GRPO model. About 2 minutes on 2 cores (three
4-step runs of ~10 s a step, and an eval), hence `slow`.

pytest runs in `.venv`; training needs `.venv-train`, so the runs are subprocesses (the
CLI, and tests/trainer/check_grpo.py for the checks made inside).
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
import yaml

from tests.trainer.fixtures import REPO, TRAIN_PYTHON, make_build, ok, run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not TRAIN_PYTHON.exists(),
        reason="needs the training environment: make .venv-train/.installed",
    ),
]
TRAIN = ["-m", "vlm_autodrive.cli", "train"]
CHECK = str(REPO / "tests" / "trainer" / "check_grpo.py")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grpo")
    build = make_build(tmp / "sample")
    model = tmp / "tiny-qwen2_5_vl"
    tiny = ["-m", "vlm_autodrive.builders.synthetic.tiny_models", "--kind", "vlm"]
    ok(run(str(TRAIN_PYTHON), *tiny, "--out", str(model)))
    recipe = yaml.safe_load((REPO / "recipes/train/grpo_tiny_cpu.yaml").read_text())
    recipe["model"]["path"] = str(model)
    recipe["dataset"]["path"] = str(build)
    recipe["grpo"]["max_completion_length"] = 16
    path = tmp / "grpo.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return build, model, path, tmp


@pytest.fixture(scope="module")
def trained(data):
    """4 steps with a test-only length reward beside the recipe's two."""
    _, model, recipe, tmp = data
    out = tmp / "run"
    proc = ok(run(str(TRAIN_PYTHON), CHECK, str(recipe), str(out), str(model)))
    for name in ("rewards", "weights", "reload"):
        assert f"ok {name}" in proc.stdout
    return out


def test_grpo_steps_reward_real_generations_and_move_the_weights(trained):
    for name in ("config.json", "model.safetensors", "processor_config.json", "tokenizer.json"):
        assert (trained / name).is_file(), name
    assert sorted(p.name for p in trained.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]


def test_resume_through_the_cli(data, trained):
    _, _, recipe, tmp = data
    killed = tmp / "killed"
    shutil.copytree(trained, killed)
    shutil.rmtree(killed / "checkpoint-4")
    for f in ("model.safetensors", "train_summary.json"):
        (killed / f).unlink()
    refused = run(str(TRAIN_PYTHON), *TRAIN, str(recipe), "--output-dir", str(killed))
    assert refused.returncode == 2 and "--resume" in refused.stderr
    proc = ok(run(str(TRAIN_PYTHON), *TRAIN, str(recipe), "--output-dir", str(killed), "--resume"))
    assert "resuming" in proc.stdout and "checkpoint-2" in proc.stdout
    summary = json.loads((killed / "train_summary.json").read_text())
    assert summary["kind"] == "grpo" and summary["global_step"] == 4
    assert summary["resumed_from"].endswith("checkpoint-2") and math.isfinite(summary["train_loss"])
    state = json.loads((killed / "checkpoint-4" / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2, 3, 4]


def test_eval_on_the_grpo_model(data, trained):
    build, _, _, tmp = data
    out = tmp / "eval"
    cmd = [
        str(TRAIN_PYTHON), "-m", "vlm_autodrive.trainer.eval.cli",
        "--model", str(trained), "--dataset", str(build), "--mode", "reasoning",
        "--name", "tiny GRPO", "--out", str(out),
        "--fps", "2", "--max-frames", "8", "--max-new-tokens", "16",
    ]  # fmt: skip
    ok(run(*cmd))
    report = json.loads((out / "report.json").read_text())
    assert report["runner"]["model_class"] == "Qwen2_5_VLForConditionalGeneration"
    assert report["results"][0]["mode"] == "reasoning"
    assert report["results"][0]["metrics"]["n"] == report["dataset"]["rows"] > 0


def test_bad_grpo_recipe_is_a_clear_error(data):
    _, _, recipe, tmp = data
    bad = yaml.safe_load(recipe.read_text())
    bad["grpo"]["num_generation"] = 4
    bad["grpo"]["reward_weights"] = [1, 1]
    path = tmp / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = run(str(TRAIN_PYTHON), *TRAIN, str(path))
    assert proc.returncode == 2
    assert "grpo.num_generation" in proc.stderr and "did you mean num_generations" in proc.stderr
    assert "grpo.reward_weights" in proc.stderr and "rewards:" in proc.stderr
