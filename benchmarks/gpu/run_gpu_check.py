"""The GPU check: SFT throughput and memory against plain TRL, eval clips/s, NVDEC decode
and GRPO steps/s, measured in one command on a GPU machine (benchmarks/gpu/README.md).

    python3 benchmarks/gpu/run_gpu_check.py                # on the GPU machine
    .venv/bin/python benchmarks/gpu/run_gpu_check.py --cpu-smoke --out DIR   # here, CI

On the GPU machine it first makes a virtual environment on top of the image's torch
(`--system-site-packages`), installs the wheels `make gpu-wheels` put in `.whl/` offline
(transformers 5.23 among them: the image's 5.17 trains video SFT on no token) and this
project, then runs the parts in order, each in child processes with a time box,
so one failing records its error and the rest still run:

- data: synthetic 720p dashcam videos -> `autodrive build` (clips, mcq) -> `autodrive mix`;
- model: a randomly initialised model of Qwen2.5-VL-3B's shape (and the tiny test model);
- decode: PyAV's CPU h264 decoder against `h264_cuvid`, frames/s on the build's clips;
- sft: `autodrive train` and plain `trl.SFTTrainer` on the same recipe (bf16, gradient
  checkpointing, DeepSpeed ZeRO-3, the paper's 30 fps / 180 frames / 81920 px budget,
  scaled on a GPU under 100 GiB): steady-state samples/s, tokens/s, peak memory, ratio;
- eval: `autodrive eval --runner transformers`, clips/s in direct and reasoning mode;
- grpo: the tiny-model GRPO recipe, steps/s.

Out: `gpu_report.json` (every part's status, seconds, error or result), `gpu_summary.txt`
(a short table, also printed) and `gpu_check.log` (every child's output) in --out ($OUT
when set). `--cpu-smoke` runs the same parts with the tiny model, 2 steps each, on the
CPU, in `.venv-train` (no venv is made). Exit code 0 when every part ran, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import parts
from environment import device_facts, make_gpu_env

REPO = Path(__file__).resolve().parents[2]
SCHEMA = 1
# Seconds each part may take at most, and the least the later ones are promised.
# The cheap parts first: SFT, the longest and the likeliest to run out of memory, gets
# what is left of the budget.
BOXES = {"data": 120, "model": 90, "decode": 45, "eval": 100, "grpo": 80, "sft": 400}
FLOORS = {"data": 20, "model": 20, "decode": 10, "eval": 40, "grpo": 30, "sft": 150}


@dataclass
class Settings:
    """What the check runs with; `gpu()` and `cpu_smoke()` give the two modes' values."""

    mode: str
    out: Path
    work: Path
    python: str = sys.executable
    budget_s: float = 470.0
    videos: int = 9
    width: int = 1280
    height: int = 720
    test_per_class: int = 2
    shape: str = "3b"
    fps: float = 30.0
    frames: int = 180
    max_pixels: int = 81920
    budget_note: str = "the paper recipe's budget (recipes/train/cosmos_reason1_7b.yaml)"
    global_batch: int = 2
    sft_warmup: int = 2
    sft_steps: int = 5
    bf16: bool = True
    deepspeed: str | None = "recipes/deepspeed/zero3.json"
    loader_workers: int = 8
    decode_clips: int = 6
    eval_direct: int = 6
    eval_reasoning: int = 3
    reasoning_tokens: int = 128
    grpo_warmup: int = 2
    grpo_steps: int = 4
    device_name: str = "cpu"
    checkpointing_field: str = "activation_checkpointing"  # gradient_... before transformers 5.23
    env: dict = field(default_factory=dict, repr=False)
    log: Path | None = None

    @classmethod
    def cpu_smoke(cls, out: Path, work: Path, python: str) -> Settings:
        return cls(
            mode="cpu-smoke", out=out, work=work, python=python, budget_s=600, videos=6,
            width=160, height=96, test_per_class=1, shape="tiny", fps=2.0, frames=8,
            max_pixels=12544, budget_note="the CPU recipe's budget (tiny_cpu.yaml)",
            global_batch=1, sft_warmup=0, sft_steps=2, bf16=False, loader_workers=0,
            decode_clips=2, eval_direct=3, eval_reasoning=3, reasoning_tokens=8,
            grpo_warmup=0, grpo_steps=2, deepspeed=None,
        )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu-smoke", action="store_true", help="tiny model, 2 steps, CPU")
    p.add_argument("--out", type=Path, help="report folder (default: $OUT, else build/gpu-check)")
    p.add_argument("--work", type=Path, help="scratch folder (default: /tmp/gpu-check)")
    p.add_argument("--python", help="environment to run in (default: make one / .venv-train)")
    p.add_argument("--parts", default=",".join(parts.PARTS), help="comma-separated subset")
    p.add_argument("--budget-s", type=float, help="wall seconds for all parts (default 470)")
    p.add_argument("--frames", type=int, help="SFT/eval frames per clip (default 180)")
    p.add_argument("--max-pixels", type=int, help="per-frame pixel budget (default 81920)")
    p.add_argument("--steps", type=int, help="timed SFT steps (default 5)")
    p.add_argument("--global-batch", type=int, help="SFT samples per optimizer step (2)")
    p.add_argument("--zero", choices=["2", "3", "none"], help="DeepSpeed stage (default 3)")
    # Check the GPU mode's environment step on a machine without a GPU.
    p.add_argument("--allow-no-cuda", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    started, clock = datetime.now(timezone.utc), time.monotonic()
    out = args.out or Path(os.environ.get("OUT") or REPO / "build" / "gpu-check")
    work = args.work or (Path("/tmp/gpu-check") if not args.cpu_smoke else out / "work")
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    log = out / "gpu_check.log"
    log.write_text("")
    report: dict = {
        "schema": SCHEMA,
        "mode": "cpu-smoke" if args.cpu_smoke else "gpu",
        "started": started.isoformat(timespec="seconds"),
        "host": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "commit": _commit(),
    }

    if args.cpu_smoke:
        python = args.python or str(REPO / ".venv-train" / "bin" / "python")
        s = Settings.cpu_smoke(out, work, python)
        report["environment"] = {"python": python, "made": False}
    else:
        env_report, python = make_gpu_env(work, args.python, log)
        report["environment"] = env_report
        s = Settings(mode="gpu", out=out, work=work, python=python or sys.executable)
    s.log = log
    s.env = _child_env(work)
    facts = device_facts(s.python, s.env)
    report["device"] = facts
    s.device_name = facts.get("name", "unknown")
    s.checkpointing_field = facts.get("checkpointing_field", s.checkpointing_field)
    _apply_overrides(s, args, facts)
    report["settings"] = {k: (str(v) if isinstance(v, Path) else v)
                          for k, v in asdict(s).items() if k not in ("env", "log")}  # fmt: skip

    wanted = [name for name in parts.PARTS if name in args.parts.split(",")]
    blocked = None
    if python is None:
        blocked = "the environment could not be set up (see environment)"
    elif s.mode == "gpu" and not facts.get("cuda_available") and not args.allow_no_cuda:
        blocked = f"torch sees no CUDA device ({facts.get('torch_error') or facts.get('torch')})"
    report["parts"] = run_parts(s, wanted, clock + s.budget_s, blocked)
    report["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    report["seconds"] = round(time.monotonic() - clock, 1)
    (out / "gpu_report.json").write_text(json.dumps(report, indent=2) + "\n")
    summary = summarize(report)
    (out / "gpu_summary.txt").write_text(summary + "\n")
    print(summary)
    return 0 if all(r["status"] == "ok" for r in report["parts"].values()) else 1


def _commit() -> str | None:
    """The project's commit, where the copy has its git folder (the GPU machine's may not)."""
    import subprocess

    try:
        git = ["git", "rev-parse", "HEAD"]
        proc = subprocess.run(git, cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def _child_env(work: Path) -> dict[str, str]:
    """Offline, unbuffered children, with caches inside the scratch folder."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1",
               TOKENIZERS_PARALLELISM="false", HF_HOME=str(work / "hf-home"))  # fmt: skip
    env.pop("PYTHONPATH", None)
    return env


def _apply_overrides(s: Settings, args, facts: dict) -> None:
    """Flags over the mode's values; on a GPU under 100 GiB (an H100), 60 of the 180
    frames: ZeRO states of the 3.75B model take ~60 GiB there, and the 9,360 vision
    tokens of the full budget need ~15 GiB more for logits and activations."""
    if s.mode == "gpu" and facts.get("memory_gib", 0) < 100 and args.frames is None:
        s.frames = 60
        s.budget_note = (
            f"scaled for a {facts.get('memory_gib')} GiB GPU: 60 of the recipe's 180 frames "
            "(fps 30, 81920 px kept), 3,120 vision tokens instead of 9,360"
        )
    if args.frames is not None:
        s.frames, s.budget_note = args.frames, f"--frames {args.frames} (recipe: 180)"
    if args.max_pixels is not None:
        s.max_pixels = args.max_pixels
        s.budget_note += f", --max-pixels {args.max_pixels} (recipe: 81920)"
    if args.steps is not None:
        s.sft_steps = args.steps
    if args.global_batch is not None:
        s.global_batch = args.global_batch
    if args.zero == "none":
        s.deepspeed = None
    elif args.zero == "2":
        s.deepspeed = str(Path(__file__).resolve().parent / "zero2.json")
    elif args.zero == "3" and s.mode == "cpu-smoke":
        s.deepspeed = "recipes/deepspeed/zero3.json"
    if args.budget_s:
        s.budget_s = args.budget_s


def run_parts(s: Settings, wanted: list[str], deadline: float, blocked: str | None) -> dict:
    """Run each wanted part in order within its time box; a part's failure is recorded
    (status error or timeout, with the reason) and the next part runs. `blocked`: why
    no part can run (each is recorded as an error saying so)."""
    results, ctx = {}, {}
    for i, name in enumerate(wanted):
        later = sum(FLOORS[n] for n in wanted[i + 1 :])
        part_deadline = min(time.monotonic() + BOXES[name], deadline - later)
        if s.mode == "cpu-smoke":
            part_deadline = deadline  # CPU speed varies: only the whole budget counts
        result: dict = {}
        start = time.monotonic()
        entry = {"status": "ok", "seconds": 0.0, "error": None, "result": result}
        _log(s, f"=== part {name} (box {part_deadline - start:.0f} s)")
        try:
            if blocked:
                raise parts.PartError(blocked)
            parts.PARTS[name](s, ctx, result, part_deadline)
        except parts.PartError as e:
            timed_out = "time box" in str(e) or "no time left" in str(e)
            entry.update(status="timeout" if timed_out else "error", error=str(e))
        except Exception as e:
            entry.update(status="error", error=f"{type(e).__name__}: {e}")
        entry["seconds"] = round(time.monotonic() - start, 1)
        _log(s, f"=== part {name}: {entry['status']} in {entry['seconds']} s")
        results[name] = entry
    return results


def _log(s: Settings, line: str) -> None:
    print(line, flush=True)
    if s.log:
        with s.log.open("a") as f:
            f.write(line + "\n")


def summarize(report: dict) -> str:
    """The text summary: device, environment, then one block per part."""
    from summary import summary_text

    return summary_text(report)


if __name__ == "__main__":
    sys.exit(main())
