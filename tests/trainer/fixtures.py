"""Data for the training tests, shared by the pytest modules (core `.venv`) and the check
scripts run in `.venv-train`; no pytest here.

`make_build` runs the real pipeline (synthetic sample -> ingest -> chunk -> rule splits)
on a few short videos, in seconds; `mix` runs `autodrive mix` on it (config
`mix-quickstart`). `write_mixture` writes a mixture config by hand in the same format
(columns id, source_id, source_config, copy, clip_id, video_id, label, split, video,
messages; content parts are Arrow structs {type, text, video}), for rows the mixer would
never write (a clip path that does not resolve).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRAIN_PYTHON = REPO / ".venv-train" / "bin" / "python"
CONFIG = "mix-quickstart"
SYSTEM = "You are a driving safety analyst. Watch the dashcam clip and answer the question."

RECIPE = """\
manifest: {tmp}/sample/manifest.jsonl
build_dir: {tmp}/build
sample: {{videos: 6, seed: 0, duration: 12.0, width: 160, height: 96, fps: 30.0, gop: 30}}
rules: {{configs: [mcq], test_per_class: 1, on_short: take_available}}
"""


def make_build(tmp: Path) -> Path:
    """A small real build folder (clips and the `mcq` config) under `tmp`; returns it."""
    tmp.mkdir(parents=True, exist_ok=True)
    recipe = tmp / "build.yaml"
    recipe.write_text(RECIPE.format(tmp=tmp))
    cmd = [sys.executable, "-m", "vlm_autodrive.cli", "build", str(recipe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO)
    return tmp / "build"


MIXTURE = """\
name: quickstart
description: the test build's MCQ, classes balanced by upsampling
seed: 0
splits: [train]
conversation:
  system_prompt: driving_assistant
  reasoning_system_prompt: driving_reasoner
  reasoning: true
components:
  - config: mcq
    upsample: {Collision: 3, Near-Collision: 3}
"""


def mix(build: Path) -> Path:
    """Run `autodrive mix` on `build`: writes its `mix-quickstart` config; returns the
    config's Parquet file."""
    recipe = build.parent / "mixture.yaml"
    recipe.write_text(MIXTURE)
    cmd = [sys.executable, "-m", "vlm_autodrive.cli", "mix", str(recipe), "--build", str(build)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO)
    from vlm_autodrive.builders.dataset.folder import data_path

    return data_path(build, CONFIG, "train")


def mixture_rows(build: Path, copies: int = 3) -> list[dict]:
    """Conversation rows from the build's mcq train rows, each repeated `copies` times;
    odd copies answer in the Cosmos-Reason1 reasoning form."""
    import pyarrow.parquet as pq

    from vlm_autodrive.builders.dataset.folder import data_path

    source = pq.read_table(data_path(build, "mcq", "train")).to_pylist()
    rows = []
    for r in source:
        for copy in range(copies):
            answer = r["answer"]
            if copy % 2:
                answer = (
                    f"<think>\nThe clip shows {r['label'].lower()}.\n</think>\n\n"
                    f"<answer>\n{r['answer_letter']}\n</answer>"
                )
            rows.append(
                {
                    "id": f"{r['id']}-{copy}",
                    "source_id": r["id"],
                    "source_config": "mcq",
                    "copy": copy,
                    "clip_id": r["clip_id"],
                    "video_id": r["video_id"],
                    "label": r["label"],
                    "split": "train",
                    "video": r["video"],
                    "messages": conversation(r["video"], r["question"], answer),
                }
            )
    return rows


def conversation(video: str, question: str, answer: str) -> list[dict]:
    """system, user (video part then question), assistant; every part has all keys."""

    def part(kind, text=None, clip=None):
        return {"type": kind, "text": text, "video": clip}

    return [
        {"role": "system", "content": [part("text", SYSTEM)]},
        {"role": "user", "content": [part("video", clip=video), part("text", question)]},
        {"role": "assistant", "content": [part("text", answer)]},
    ]


def write_mixture(build: Path, rows: list[dict], config: str = CONFIG) -> Path:
    """Write `rows` as the config's train file, `data/<config>/train-<hash>.parquet` named
    by its content as the toolkit names it, in place of the config's other train files;
    returns the file. (Self-contained: the check scripts run it in `.venv-train`.)"""
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    part = pa.struct([("type", pa.string()), ("text", pa.string()), ("video", pa.string())])
    turn = pa.struct([("role", pa.string()), ("content", pa.list_(part))])
    schema = pa.schema(
        [
            *[(c, pa.string()) for c in ("id", "source_id", "source_config")],
            ("copy", pa.int32()),
            *[(c, pa.string()) for c in ("clip_id", "video_id", "label", "split", "video")],
            ("messages", pa.list_(turn)),
        ]
    )
    folder = build / "data" / config
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("train-*.parquet"):
        old.unlink()
    tmp = folder / ".train.tmp"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    path = folder / f"train-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:16]}.parquet"
    tmp.replace(path)
    return path


def train_recipe(
    tmp: Path, model: Path, build: Path, output: Path, zero3: bool = False, **video
) -> Path:
    """The bundled CPU recipe pointed at `model`, `build` and `output`; with `zero3`, it
    trains under DeepSpeed ZeRO-3 (which runs on the CPU too, over gloo)."""
    import yaml

    data = yaml.safe_load((REPO / "recipes" / "train" / "tiny_cpu.yaml").read_text())
    data["model"]["path"] = str(model)
    data["dataset"]["path"] = str(build)
    data["output_dir"] = str(output)
    data["video"].update(video)
    if zero3:
        data["deepspeed"] = "recipes/deepspeed/zero3.json"
        data["sft"].pop("use_cpu")  # DeepSpeed picks its (CPU) accelerator itself
    path = tmp / f"train-{output.name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(*args: str, timeout: int = 400) -> subprocess.CompletedProcess:
    """A command of the training tests, offline, from the repository root."""
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false"
    )
    return subprocess.run(
        [*args], capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout
    )


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """`proc`, after checking it succeeded (its output tails in the message otherwise)."""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc
