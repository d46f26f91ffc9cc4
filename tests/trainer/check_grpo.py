"""GRPO checks that need `.venv-train`. Run by tests/trainer/rl/test_grpo.py as

    .venv-train/bin/python tests/trainer/check_grpo.py RECIPE OUT MODEL

Trains the recipe (4 steps, checkpoints at 2 and 4) with one test-only reward added: the
completion's length, so the random model's groups have reward variance and GRPO a
gradient (it never earns the recipe's answer or format reward). Then: the rewards were
computed from real generations, the loss is finite, the weights moved away from MODEL's,
and checkpoint-2 reloads. Prints `ok <name>`; the first failure raises.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def length_reward(completions, **_):
    """Test-only: longer completions score higher (variance within every group)."""
    from vlm_autodrive.trainer.rl.rewards import completion_text

    return [len(completion_text(c)) / 100 for c in completions]


def main(recipe_path: str, out: str, model: str) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    from vlm_autodrive.trainer.rl.config import load_grpo_recipe
    from vlm_autodrive.trainer.rl.trainer import train_grpo

    recipe = load_grpo_recipe(recipe_path)
    res = train_grpo(recipe, output_dir=out, extra_reward_funcs=(length_reward,))
    assert res.global_step == 4 and math.isfinite(res.train_loss), res
    summary = json.loads((Path(out) / "train_summary.json").read_text())
    means = summary["reward_means"]
    for name in ("trl_answer_reward", "trl_format_reward", "length_reward"):
        assert f"rewards/{name}/mean" in means, means
    assert means["rewards/length_reward/mean"] > 0  # real, non-empty generations
    state = json.loads((Path(out) / "checkpoint-4/trainer_state.json").read_text())
    logged = [e for e in state["log_history"] if "loss" in e]
    assert [e["step"] for e in logged] == [1, 2, 3, 4]
    assert all(math.isfinite(e["loss"]) for e in logged)
    assert any(e["reward_std"] > 0 for e in logged), logged
    print("ok rewards", json.dumps(means))

    before = load_file(f"{model}/model.safetensors")
    after = load_file(f"{out}/model.safetensors")
    assert before.keys() == after.keys()
    moved = max((after[k] - before[k]).abs().max().item() for k in before)
    assert moved > 0, "no weight changed"
    print(f"ok weights (max change {moved:.3g})")

    ckpt = AutoModelForImageTextToText.from_pretrained(f"{out}/checkpoint-2", dtype=torch.float32)
    final = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32)
    assert type(ckpt).__name__ == "Qwen2_5_VLForConditionalGeneration"
    a, b = ckpt.state_dict(), final.state_dict()
    assert a.keys() == b.keys()
    print("ok reload")


if __name__ == "__main__":
    main(*sys.argv[1:4])
