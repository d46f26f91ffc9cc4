"""The GPU check (benchmarks/gpu/run_gpu_check.py) in its `--cpu-smoke` mode: every part
runs for real (synthetic build, tiny model, `autodrive train` against plain TRL, eval,
decode, GRPO), 2 steps each, on the CPU in `.venv-train`, so the script that only a GPU
machine runs in full cannot rot. Slow: 3.5 to 5 minutes on this project's 2-core machines.

Also, fast: the step-rate arithmetic and the time box of the command runner it uses.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GPU_CHECK = REPO / "benchmarks" / "gpu"
TRAIN_PYTHON = REPO / ".venv-train" / "bin" / "python"
PARTS = ["data", "model", "decode", "eval", "grpo", "sft"]

sys.path.insert(0, str(GPU_CHECK))
from common import run_timed, steady_rate  # noqa: E402


def test_steady_rate_leaves_out_warmup_steps():
    # Steps end at 10 s (slow first step), then every 2 s.
    rate = steady_rate([10.0, 12.0, 14.0, 16.0, 18.0], warmup=1, per_step=8)
    assert rate["steps_timed"] == 3 and rate["seconds_timed"] == 6.0
    assert rate["steps_per_s"] == 0.5 and rate["units_per_s"] == 4.0
    assert rate["median_step_s"] == 2.0
    with pytest.raises(ValueError, match="need at least 3"):
        steady_rate([1.0, 2.0], warmup=1, per_step=1)


def test_step_lines_are_the_trainers_per_step_logs_not_its_final_summary():
    # What transformers' PrinterCallback prints (values formatted as strings).
    printed = [
        "{'loss': '6.108', 'grad_norm': '6.252', 'learning_rate': '0', 'epoch': '0.1111'}",
        "dataset: build [mix/train]: 9 rows",
        "{'loss': '6.025', 'grad_norm': '5.139', 'learning_rate': '1e-05', 'epoch': '0.2222'}",
        "{'train_runtime': '5.1', 'train_samples_per_second': '0.39', 'train_loss': '6.07'}",
    ]
    lines = ";".join(f"print({text!r})" for text in printed)
    run = run_timed([sys.executable, "-c", lines], timeout=30)
    assert run.ok and len(run.step_times()) == 2
    assert run.step_losses() == [6.108, 6.025]


def test_run_timed_kills_at_its_time_box_and_keeps_what_was_printed():
    code = "import time\nprint('started', flush=True)\ntime.sleep(30)"
    run = run_timed([sys.executable, "-c", code], timeout=1.5)
    assert run.timed_out and not run.ok and run.seconds < 10
    assert [text for _, text in run.lines] == ["started"]
    assert "time box" in run.failure()


def test_gpu_wheels_target_is_included_from_the_makefile():
    dry = subprocess.run(
        ["make", "-n", "gpu-wheels"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert "pip download" in dry.stdout and "--python-version 3.12" in dry.stdout
    assert "DS_BUILD_OPS=0" in dry.stdout  # DeepSpeed ships sources: a pure-Python wheel


@pytest.mark.slow
def test_cpu_smoke_runs_every_part_and_writes_the_report(tmp_path):
    if not TRAIN_PYTHON.exists():
        pytest.skip(".venv-train is missing (make .venv-train/.installed): the smoke trains")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(GPU_CHECK / "run_gpu_check.py"), "--cpu-smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads((out / "gpu_report.json").read_text())
    assert report["schema"] == 1 and report["mode"] == "cpu-smoke"
    assert {"started", "finished", "seconds", "device", "environment", "settings"} <= set(report)
    assert report["device"]["packages"]["trl"] and report["device"]["packages"]["deepspeed"]
    assert list(report["parts"]) == PARTS
    for name, entry in report["parts"].items():
        assert entry["status"] == "ok", (name, entry["error"])
        assert entry["error"] is None and entry["seconds"] > 0 and entry["result"], name

    parts = {name: entry["result"] for name, entry in report["parts"].items()}
    assert parts["data"]["clips"] > 0
    sft = parts["sft"]
    for run in ("ours", "trl"):
        assert sft[run]["samples_per_s"] > 0 and sft[run]["tokens_per_s"] > 0
        assert sft[run]["steps_total"] == 2  # the smoke's 2 steps, each logged
    assert sft["tokens_per_sample"]["vision_tokens"] > 0
    assert sft["tokens_per_sample"]["trained_tokens"] > 0  # the assistant mask is not empty
    # Same model, rows, collator, settings and seed: the same losses, step by step.
    assert sft["ours"]["losses"] == pytest.approx(sft["trl"]["losses"], rel=1e-3)
    assert all(loss > 0 for loss in sft["ours"]["losses"])
    assert sft["ratio_ours_over_trl"]["samples_per_s"] > 0
    for mode in ("direct", "reasoning"):
        assert parts["eval"][mode]["clips"] == 3 and parts["eval"][mode]["clips_per_s"] > 0
    assert parts["decode"]["cpu"]["fps"] > 0
    assert "error" in parts["decode"]["h264_cuvid"]  # no NVIDIA driver here: reported, not fatal
    assert parts["grpo"]["steps_total"] == 2 and parts["grpo"]["steps_per_s"] > 0

    summary = (out / "gpu_summary.txt").read_text()
    for name in PARTS:
        assert f"[{name}] ok" in summary
    assert "ours/trl: samples/s x" in summary


def test_a_failing_or_overrunning_part_is_recorded_and_the_next_parts_still_run(
    tmp_path, monkeypatch
):
    import parts
    import run_gpu_check

    def broken(s, ctx, result, deadline):
        result["partial"] = 1
        raise RuntimeError("a bug in this part")

    def overrunning(s, ctx, result, deadline):
        parts._run(s, [sys.executable, "-c", "import time; time.sleep(30)"], deadline, box=1)

    def fine(s, ctx, result, deadline):
        result["ran"] = True

    monkeypatch.setattr(parts, "PARTS", {"data": broken, "model": overrunning, "decode": fine})
    s = run_gpu_check.Settings(mode="gpu", out=tmp_path, work=tmp_path, log=tmp_path / "log")
    got = run_gpu_check.run_parts(s, ["data", "model", "decode"], deadline=1e12, blocked=None)
    assert [(name, r["status"]) for name, r in got.items()] == [
        ("data", "error"),
        ("model", "timeout"),
        ("decode", "ok"),
    ]
    assert got["data"]["error"] == "RuntimeError: a bug in this part"
    assert got["data"]["result"] == {"partial": 1}  # what it had measured is kept
    assert "time box of 1 s" in got["model"]["error"]
    assert got["decode"]["result"] == {"ran": True}
