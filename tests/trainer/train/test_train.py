"""`autodrive train` end to end on the CPU: synthetic sample -> build -> `autodrive mix`
-> the tiny random Qwen2.5-VL trained a few real steps.

pytest runs in the core `.venv`; training needs `.venv-train` (CUDA builds of torch and
torchvision that run on the CPU, transformers, TRL, DeepSpeed), so these tests run it as
subprocesses: the CLI for the runs, tests/trainer/check_train.py for the checks made
inside (labels of a decoded batch, skip handling, DeepSpeed's parser, bad recipes).
"""

from __future__ import annotations

import json
import math
import shutil

import pyarrow.parquet as pq
import pytest

from tests.trainer.fixtures import REPO, TRAIN_PYTHON, make_build, mix, ok, run, train_recipe
from vlm_autodrive.builders.dataset.folder import data_path

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not TRAIN_PYTHON.exists(),
        reason="needs the training environment: make .venv-train/.installed",
    ),
]
# The same arguments and handler as `autodrive train` (vlm_autodrive.cli registers it).
TRAIN = ["-m", "vlm_autodrive.cli", "train"]
CHECK = str(REPO / "tests" / "trainer" / "check_train.py")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """(build with the mix-quickstart config and one corrupt clip, tiny model, tmp)."""
    tmp = tmp_path_factory.mktemp("train")
    build = make_build(tmp / "sample")
    clips = pq.read_table(mix(build), columns=["video"]).column("video").to_pylist()
    # A clip that exists (so the pre-flight check passes) but cannot be decoded: its rows
    # must be skipped mid-epoch, counted, and training must go on.
    broken = next(c for c in reversed(clips) if c != clips[0])
    (build / broken).write_bytes((build / broken).read_bytes()[:3000])
    model = tmp / "tiny-qwen2_5_vl"
    ok(
        run(
            str(TRAIN_PYTHON),
            "-m",
            "vlm_autodrive.builders.synthetic.tiny_models",
            "--kind",
            "vlm",
            "--out",
            str(model),
        )
    )
    return build, model, tmp


@pytest.fixture(scope="module")
def trained(data):
    """One uninterrupted run of 4 steps (checkpoints at 2 and 4)."""
    build, model, tmp = data
    out = tmp / "run"
    recipe = train_recipe(tmp, model, build, out)
    proc = ok(run(str(TRAIN_PYTHON), *TRAIN, str(recipe)))
    return recipe, out, proc


def test_train_writes_checkpoints_and_final_model(data, trained):
    _, model, tmp = data
    _, out, proc = trained
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["global_step"] == 4
    assert math.isfinite(summary["train_loss"])
    mixed = pq.read_table(data_path(data[0], "mix-quickstart", "train"))
    videos = mixed.column("video").to_pylist()
    assert summary["rows"] == len(videos) > summary["clips"] == len(set(videos))  # upsampled
    # the corrupt clip's rows were met mid-epoch, skipped and counted; training went on
    assert summary["skipped_decode"] >= 1
    assert "skipped in this run" in proc.stdout
    for name in ("config.json", "model.safetensors", "processor_config.json", "tokenizer.json"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    card = (out / "README.md").read_text()  # TRL's card names what was fine-tuned on what
    assert "fine-tuned version of [tiny-qwen2_5_vl]" in card and "[None]" not in card
    assert f"on the [{data[0].name}]" in card and "# Model Card for run" in card
    # reload the final model and a checkpoint; the weights moved away from the initial ones
    ok(
        run(
            str(TRAIN_PYTHON), CHECK, str(data[0]), str(model), str(tmp / "work"), "model", str(out)
        )
    )


def test_resume_continues_from_its_step_under_accelerate(data, trained):
    """Kill after step 2 (simulated: later files removed), resume through `accelerate
    launch`: it continues from checkpoint-2 and ends with the uninterrupted run's weights."""
    _, _, tmp = data
    recipe, out, _ = trained
    killed = tmp / "killed"
    shutil.copytree(out, killed)
    shutil.rmtree(killed / "checkpoint-4")
    for f in ("model.safetensors", "train_summary.json"):
        (killed / f).unlink()

    refused = run(str(TRAIN_PYTHON), *TRAIN, str(recipe), "--output-dir", str(killed))
    assert refused.returncode == 2 and "--resume" in refused.stderr

    accelerate = str(TRAIN_PYTHON.parent / "accelerate")
    launch = [accelerate, "launch", "--cpu", "--num_processes", "1", "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    proc = ok(run(*launch, *TRAIN, str(recipe), "--output-dir", str(killed), "--resume"))
    assert "resuming" in proc.stdout and "checkpoint-2" in proc.stdout
    summary = json.loads((killed / "train_summary.json").read_text())
    assert summary["global_step"] == 4 and summary["resumed_from"].endswith("checkpoint-2")
    state = json.loads((killed / "checkpoint-4" / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2, 3, 4]
    ok(run(str(TRAIN_PYTHON), "-c", SAME_WEIGHTS, str(out), str(killed)))


def test_a_finished_run_is_not_trained_again_and_a_changed_recipe_is_refused(data, trained):
    """Re-running a finished recipe does nothing (no new step); changing a setting and
    running into the same folder is refused, naming the changed key."""
    import yaml

    _, _, tmp = data
    recipe, out, _ = trained
    before = sorted(p.name for p in out.glob("checkpoint-*"))
    weights = (out / "model.safetensors").read_bytes()
    again = ok(run(str(TRAIN_PYTHON), *TRAIN, str(recipe), "--resume"))
    assert "nothing to do" in again.stdout and "done: step 4" in again.stdout
    assert sorted(p.name for p in out.glob("checkpoint-*")) == before
    assert (out / "model.safetensors").read_bytes() == weights

    changed = yaml.safe_load(recipe.read_text())
    changed["sft"]["learning_rate"] = 0.5
    other = tmp / "train-changed.yaml"
    other.write_text(yaml.safe_dump(changed, sort_keys=False))
    refused = run(str(TRAIN_PYTHON), *TRAIN, str(other), "--resume")
    assert refused.returncode == 2
    assert "sft.learning_rate" in refused.stderr and "--force" in refused.stderr


def test_zero3_saves_the_same_hugging_face_model(data, trained):
    """The README's single-GPU command, on the CPU: ZeRO-3 partitions the model, and its
    16-bit-gathered saves are plain Hugging Face folders with the same keys and (fp32
    here) the same weights as the run without DeepSpeed."""
    build, model, tmp = data
    _, plain, _ = trained
    out = tmp / "zero3"
    recipe = train_recipe(tmp, model, build, out, zero3=True)
    accelerate = str(TRAIN_PYTHON.parent / "accelerate")
    launch = [accelerate, "launch", "--num_processes", "1", "--num_machines", "1"]
    launch += ["--use_deepspeed", "--deepspeed_config_file", "recipes/deepspeed/zero3.json"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    ok(run(*launch, *TRAIN, str(recipe)))
    assert (out / "checkpoint-4" / "global_step4").is_dir()  # DeepSpeed's own state
    for folder in (out, out / "checkpoint-4"):
        ok(run(str(TRAIN_PYTHON), "-c", SAME_WEIGHTS, str(plain), str(folder), "1e-4"))


SAME_WEIGHTS = """
import sys
from safetensors.torch import load_file
a, b = (load_file(f"{d}/model.safetensors") for d in sys.argv[1:3])
assert a.keys() == b.keys(), sorted(set(a) ^ set(b))[:5]
diff = max((a[k] - b[k]).abs().max().item() for k in a)
assert diff <= float(sys.argv[3]) if len(sys.argv) > 3 else diff == 0, diff
"""


def test_internal_checks(data):
    """Labels mask all but assistant tokens; skips; DeepSpeed parser; bad recipes."""
    build, model, tmp = data
    proc = ok(run(str(TRAIN_PYTHON), CHECK, str(build), str(model), str(tmp / "work")))
    for name in ("labels", "skips", "deepspeed", "recipe errors"):
        assert f"ok {name}" in proc.stdout


def test_bad_dataset_config_is_a_clear_cli_error(data):
    build, model, tmp = data
    recipe = train_recipe(tmp, model, build, tmp / "never")
    recipe.write_text(recipe.read_text().replace("mix-quickstart", "mix-missing"))
    proc = run(str(TRAIN_PYTHON), *TRAIN, str(recipe))
    assert proc.returncode == 2
    assert "no config 'mix-missing'" in proc.stderr and "mix-quickstart" in proc.stderr
    assert not (tmp / "never").exists()
