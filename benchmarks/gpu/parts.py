"""The GPU check's parts, called in order by run_gpu_check.py: data, model, decode, eval,
grpo, sft. Each gets the settings, the shared context (what earlier parts made), its
own result dict to fill, and a deadline; it runs the toolkit's own commands in the
check's environment as child processes (benchmarks/gpu/common.py times them) and raises
PartError with the reason when it fails. Whatever it put into `result` before failing
stays in the report. Standard library plus PyYAML (in the image and in `.venv`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from common import Run, run_timed, steady_rate

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MIX_CONFIG = "mix-gpucheck"


class PartError(RuntimeError):
    """A part failed; the message says why (exit code and output tail, or time box)."""


def _left(deadline: float, box: float | None = None) -> float:
    left = deadline - time.monotonic()
    if left < 5:
        raise PartError("no time left in the check's budget for this step")
    return min(left, box) if box else left


def _run(s, cmd: list[str], deadline: float, box: float | None = None, **kw) -> Run:
    run = run_timed(cmd, _left(deadline, box), env=s.env, cwd=REPO, log=s.log, **kw)
    if not run.ok:
        raise PartError(f"{' '.join(cmd[1:4])}: {run.failure()}")
    return run


def _cli(s, *args: str) -> list[str]:
    return [s.python, "-m", "vlm_autodrive.cli", *args]


def _write(path: Path, data: dict) -> Path:
    """A recipe file, as YAML (not JSON text: PyYAML reads JSON's `1e-05` as a string)."""
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def data(s, ctx: dict, result: dict, deadline: float) -> None:
    """Synthetic dashcam videos -> `autodrive build` (clips, mcq) -> `autodrive mix`."""
    build = s.work / "build"
    recipe = {
        "manifest": str(s.work / "sample" / "manifest.jsonl"),
        "build_dir": str(build),
        "sample": {"videos": s.videos, "seed": 0, "duration": 12.0, "width": s.width,
                   "height": s.height, "fps": 30.0, "gop": 30},
        "rules": {"configs": ["mcq"], "test_per_class": s.test_per_class,
                   "on_short": "take_available"},
    }  # fmt: skip
    _run(s, _cli(s, "build", str(_write(s.work / "build.yaml", recipe))), deadline)
    mixture = {
        "name": MIX_CONFIG.removeprefix("mix-"),
        "description": "the GPU check's MCQ rows, classes balanced by upsampling",
        "seed": 0,
        "splits": ["train"],
        "conversation": {"system_prompt": "driving_assistant",
                         "reasoning_system_prompt": "driving_reasoner", "reasoning": True},
        "components": [{"config": "mcq", "upsample": {"Collision": 3, "Near-Collision": 3}}],
    }  # fmt: skip
    mix = _write(s.work / "mixture.yaml", mixture)
    _run(s, _cli(s, "mix", str(mix), "--build", str(build)), deadline)
    clips = sorted(p for p in build.rglob("*.mp4") if "sample" not in p.parts)
    if not clips:
        raise PartError(f"{build}: the build wrote no clips")
    ctx.update(build=build, clips=clips)
    result.update(videos=s.videos, size=f"{s.width}x{s.height}", clips=len(clips), build=str(build))


def model(s, ctx: dict, result: dict, deadline: float) -> None:
    """The randomly initialised model the SFT and eval parts use (and the tiny one GRPO
    uses, built beside it)."""
    out = s.work / "models" / f"random-qwen2_5_vl-{s.shape}"
    cmd = [s.python, str(HERE / "sft_check.py"), "model", "--shape", s.shape, "--out", str(out)]
    built = _run(s, cmd, deadline).result() or {}
    ctx.update(model=Path(built["path"]), tiny=s.work / "models" / "tiny-qwen2_5_vl")
    result.update(built)


def decode(s, ctx: dict, result: dict, deadline: float) -> None:
    """CPU decoder against h264_cuvid on the build's clips (benchmarks/gpu/decode_check.py)."""
    clips = [str(p) for p in _need(ctx, "clips", "data")[: s.decode_clips]]
    got = _run(s, [s.python, str(HERE / "decode_check.py"), *clips], deadline).result()
    result.update(got or {})
    if s.mode == "gpu" and "error" in result.get("h264_cuvid", {}):
        raise PartError(f"h264_cuvid: {result['h264_cuvid']['error']}")


def _need(ctx: dict, key: str, part: str):
    if key not in ctx:
        raise PartError(f"needs the {part} part, which failed")
    return ctx[key]


def sft_recipe(s, ctx: dict, output: Path) -> dict:
    """The SFT recipe the check trains: the paper recipe's settings
    (recipes/train/cosmos_reason1_7b.yaml) on the check's model, data and budgets; its
    checkpointing key is the one the installed transformers knows (5.17 on the GPU
    image: `gradient_checkpointing`; 5.23 renamed it `activation_checkpointing`)."""
    steps = s.sft_warmup + s.sft_steps
    sft = {
        "per_device_train_batch_size": 1, "max_steps": steps, "learning_rate": 1.0e-5,
        "optim": "adamw_torch", "weight_decay": 0.01, "lr_scheduler_type": "cosine",
        "warmup_steps": 0.03, "bf16": s.bf16, s.checkpointing_field: True,
        f"{s.checkpointing_field}_kwargs": {"use_reentrant": False}, "max_length": 16384,
        "logging_steps": 1, "save_strategy": "no", "report_to": "none", "seed": 0,
        "disable_tqdm": True, "dataloader_num_workers": s.loader_workers,
    }  # fmt: skip
    if s.loader_workers:
        sft["dataloader_persistent_workers"] = True
    if s.mode == "cpu-smoke" and not s.deepspeed:
        sft["use_cpu"] = True
    return {
        "model": {"path": str(ctx["model"]), "dtype": "bfloat16" if s.bf16 else "float32",
                  "attn_implementation": "sdpa"},
        "dataset": {"path": str(ctx["build"]), "config": MIX_CONFIG, "split": "train"},
        "video": {"fps": s.fps, "max_frames": s.frames, "max_pixels": s.max_pixels},
        "global_batch_size": s.global_batch,
        "sft": sft,
        "deepspeed": s.deepspeed,
        "output_dir": str(output),
    }  # fmt: skip


def sft(s, ctx: dict, result: dict, deadline: float) -> None:
    """`autodrive train` against plain trl.SFTTrainer, same recipe, one after the other."""
    _need(ctx, "build", "data")
    _need(ctx, "model", "model")
    recipe = _write(s.work / "sft.yaml", sft_recipe(s, ctx, s.work / "sft-ours"))
    result["settings"] = {
        "model": ctx["model"].name, "dtype": "bfloat16" if s.bf16 else "float32",
        "video": {"fps": s.fps, "max_frames": s.frames, "max_pixels": s.max_pixels},
        "budget_note": s.budget_note, "global_batch_size": s.global_batch,
        "per_device_batch": 1, s.checkpointing_field: True,
        "deepspeed": s.deepspeed or "none", "optimizer": "adamw_torch",
        "warmup_steps": s.sft_warmup, "timed_steps": s.sft_steps,
    }  # fmt: skip
    helper = [s.python, str(HERE / "sft_check.py")]
    tokens = _run(s, [*helper, "tokens", str(recipe)], deadline, box=120).result() or {}
    result["tokens_per_sample"] = tokens
    if not tokens.get("trained_tokens"):
        # Seen with transformers 5.17: its processor maps the template's generation spans
        # onto the video-expanded text wrongly, so the loss is 0 and nothing trains.
        raise PartError(
            f"no assistant tokens to train on (transformers {tokens.get('transformers')}): "
            "the collator's assistant mask is empty, the loss would be 0"
        )
    per_sample = tokens.get("vision_tokens", 0) + tokens.get("text_tokens", 0)
    errors = []
    for name in ("ours", "trl"):
        # A bit over half of what is left for `ours`: it also saves the final model.
        share = (deadline - time.monotonic()) * (0.55 if name == "ours" else 1)
        cmd = [*helper, name, str(recipe), "--output-dir", str(s.work / f"sft-{name}")]
        run = run_timed(cmd, _left(time.monotonic() + share), env=s.env, cwd=REPO, log=s.log)
        # Same model, rows and seed: the two runs' losses should match step by step.
        entry = {"losses": run.step_losses(), "seconds_total": round(run.seconds, 1)}
        try:  # a run cut short keeps the rate of the steps it finished
            rate = steady_rate(run.step_times(), s.sft_warmup, s.global_batch)
            samples = rate.pop("units_per_s")
            entry.update(samples_per_s=samples, tokens_per_s=round(samples * per_sample, 1))
            entry.update(rate)
        except ValueError as e:
            entry["rate_error"] = str(e)
        entry.update(run.result() or {})
        if not run.ok:
            entry["error"] = run.failure()
        elif "rate_error" in entry:
            entry["error"] = entry["rate_error"]
        if "error" in entry:
            errors.append(f"{name}: {entry['error']}")
        result[name] = entry
    if not errors:
        ours, trl = result["ours"], result["trl"]
        result["ratio_ours_over_trl"] = {
            "samples_per_s": round(ours["samples_per_s"] / trl["samples_per_s"], 3),
            "peak_allocated": round(ours["peak_allocated_gib"] / trl["peak_allocated_gib"], 3)
            if ours.get("peak_allocated_gib") and trl.get("peak_allocated_gib")
            else None,
        }
    if errors:
        raise PartError("; ".join(errors))


def eval_(s, ctx: dict, result: dict, deadline: float) -> None:
    """`autodrive eval --runner transformers` on the build's test clips, one run per mode;
    clips/s from the moments its answers land in outputs.jsonl (model load left out)."""
    build, model_dir = _need(ctx, "build", "data"), _need(ctx, "model", "model")
    errors = []
    for mode, limit, tokens in (
        ("direct", s.eval_direct, None),
        ("reasoning", s.eval_reasoning, s.reasoning_tokens),
    ):
        out = s.work / f"eval-{mode}"
        cmd = _cli(s, "eval", "--model", str(model_dir), "--dataset", str(build), "--mode",
                   mode, "--runner", "transformers", "--limit", str(limit), "--out", str(out),
                   "--fps", str(s.fps), "--max-frames", str(s.frames),
                   "--max-pixels", str(s.max_pixels))  # fmt: skip
        if tokens:
            cmd += ["--max-new-tokens", str(tokens)]
        left = (deadline - time.monotonic()) / (2 if mode == "direct" else 1)
        run = run_timed(cmd, max(left, 1), env=s.env, cwd=REPO, log=s.log,
                        watch=out / "outputs.jsonl")  # fmt: skip
        if run.timed_out or run.returncode not in (0, 3):  # 3: some answers failed
            errors.append(f"{mode}: {run.failure()}")
            result[mode] = {"error": run.failure()}
            continue
        landed = [t for t, text in run.lines if text.startswith("WATCH ")]
        timed = len(landed) - 1
        result[mode] = {
            "clips": len(landed),
            "max_new_tokens": tokens or "default",
            "clips_per_s": round(timed / (landed[-1] - landed[0]), 3) if timed > 0 else None,
            "clips_per_s_with_load": round(len(landed) / run.seconds, 3),
            "first_answer_at_s": round(landed[0], 2) if landed else None,
            "exit_code": run.returncode,
        }
        report = out / "report.json"
        if report.is_file():
            result[mode]["runner"] = json.loads(report.read_text()).get("runner")
    if errors:
        raise PartError("; ".join(errors))


def grpo(s, ctx: dict, result: dict, deadline: float) -> None:
    """A few steps of the tiny-model GRPO recipe (recipes/train/grpo_tiny_cpu.yaml) on
    the check's build; steps/s after the warm-up steps."""
    import yaml

    build, tiny = _need(ctx, "build", "data"), _need(ctx, "tiny", "model")
    data = yaml.safe_load((REPO / "recipes" / "train" / "grpo_tiny_cpu.yaml").read_text())
    data["model"]["path"] = str(tiny)
    data["dataset"].update(path=str(build), configs=["mcq"])
    data["output_dir"] = str(s.work / "grpo")
    data["grpo"].update(max_steps=s.grpo_warmup + s.grpo_steps, save_strategy="no",
                        disable_tqdm=True)  # fmt: skip
    if s.mode == "gpu":
        data["grpo"].pop("use_cpu", None)
    recipe = _write(s.work / "grpo.yaml", data)
    run = _run(s, _cli(s, "train", str(recipe)), deadline)
    rate = steady_rate(run.step_times(), s.grpo_warmup, 1)
    rate.pop("units_per_s")
    result.update(recipe="recipes/train/grpo_tiny_cpu.yaml", device=s.device_name, **rate)
    result["generations_per_step"] = data["grpo"].get("num_generations")
    result["seconds_total"] = round(run.seconds, 1)


PARTS = {"data": data, "model": model, "decode": decode, "eval": eval_, "grpo": grpo,
         "sft": sft}  # fmt: skip
