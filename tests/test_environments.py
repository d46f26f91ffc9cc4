"""Commands run in the wrong environment say which one has what they need.

`autodrive train` and `autodrive eval` (transformers and vllm runners) run as a user
runs them, from `.venv` (the toolkit's environment, no torch, TRL or vLLM): exit 2, the
environment, how to make it and the command line to run there; no traceback.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.builders.small_builds import small_build
from tests.conftest import REPO
from vlm_autodrive import environments
from vlm_autodrive.builders.dataset.folder import data_files

AUTODRIVE = Path(sys.executable).parent / "autodrive"
HAS_TORCH = importlib.util.find_spec("torch") is not None
pytestmark = pytest.mark.skipif(HAS_TORCH, reason="this environment has torch (.venv-train?)")


def autodrive(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(AUTODRIVE), *args], cwd=cwd, capture_output=True, text=True)


def expect_environment(r: subprocess.CompletedProcess, env: str, command: str) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "ModuleNotFoundError" not in r.stderr
    assert f"they are in {env} (" in r.stderr
    if (REPO / env).exists():
        assert "It exists at" in r.stderr
    else:
        assert "Make it once with `make" in r.stderr
    assert f"/bin/autodrive {command}" in r.stderr


@pytest.mark.parametrize(
    "recipe", ["recipes/train/tiny_cpu.yaml", "recipes/train/grpo_tiny_cpu.yaml"]
)
def test_train_from_the_toolkit_environment_names_the_training_one(recipe, tmp_path):
    r = autodrive(REPO, "train", recipe)
    expect_environment(r, ".venv-train", f"train {recipe}")
    assert "autodrive train needs torch, torchvision, transformers, trl, accelerate" in r.stderr
    # From another folder too: the project's environment is found, by absolute path.
    r = autodrive(tmp_path, "train", str(REPO / recipe))
    expect_environment(r, ".venv-train", f"train {REPO / recipe}")


def _eval_build(tmp_path: Path) -> Path:
    """A small dataset folder whose test clips exist (placeholders: nothing decodes them
    before the runner starts)."""
    build = small_build(tmp_path)
    for row in pq.read_table(build / data_files(build, "mcq")["test"]).to_pylist():
        clip = build / row["video"]
        clip.parent.mkdir(parents=True, exist_ok=True)
        clip.write_bytes(b"placeholder")
    return build


def test_eval_runners_name_the_environment_that_has_them(tmp_path):
    build = _eval_build(tmp_path)
    # A model folder (checked first: it is hashed into the eval's key); nothing loads it
    # before the runner, so placeholder files do.
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"placeholder")
    args = ["eval", "--model", str(model), "--dataset", str(build)]
    r = autodrive(REPO, *args, "--out", str(tmp_path / "e1"))  # auto: transformers
    expect_environment(r, ".venv-train", " ".join(args))
    assert "autodrive eval needs torch, torchvision, transformers" in r.stderr
    r = autodrive(REPO, *args, "--runner", "vllm", "--out", str(tmp_path / "e2"))
    expect_environment(r, ".venv-vllm", " ".join([*args, "--runner", "vllm"]))


def test_a_missing_environment_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.setattr(environments, "environment_candidates", lambda f: [tmp_path / f])
    with pytest.raises(environments.MissingEnvironment) as e:
        environments.require_environment("train", ("torch",), ["train", "r.yaml"])
    msg = str(e.value)
    assert "lacks torch: they are in .venv-train" in msg
    assert "Make it once with `make train-env` in the project, then run" in msg
    assert msg.endswith(".venv-train/bin/autodrive train r.yaml")
