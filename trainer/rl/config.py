"""GRPO recipes: one validated YAML naming the model, the prompts, the video budget, the
reward weights and TRL `GRPOConfig` fields. The pair of trainer/rl/trainer.py.

    model:    {id: nvidia/Cosmos-Reason1-7B, revision: <commit>}  or  {path: build/train/my-sft}
    dataset:  {path: build/quickstart, configs: [mcq, reasoning_mcq], split: train}
    video:    {fps: 2, max_frames: 16, max_pixels: 81920}   # as the SFT recipe's `video:`
    rewards:  {answer: 1.0, format: 1.0}                     # weights (trainer/rl/rewards.py)
    grpo:     {num_generations: 8, temperature: 0.9, ...}    # any field of TRL's GRPOConfig
    deepspeed: recipes/deepspeed/zero3.json                  # optional
    output_dir: build/train/NAME

`autodrive train` tells the two kinds apart by the section: `grpo:` here, `sft:` in the
SFT recipes. Unset `grpo:` fields the wrapper defaults to Cosmos-Reason1's RL settings
(`GRPO_DEFAULTS`: 8 generations, temperature 0.9, beta 0, lr 2e-6), then TRL's own. A bad
recipe fails at load with the file and the dotted key path; `grpo:` keys are checked
against the installed TRL's `GRPOConfig` when TRL is importable.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from vlm_autodrive.builders.core.strict import Strict, read_yaml_mapping, validate_model
from vlm_autodrive.trainer.train.config import ModelSpec, VideoSpec

# Cosmos-Reason1's RL (cosmos-rl: GRPO, 8 generations, lr ~2e-6, no KL term).
GRPO_DEFAULTS: dict[str, Any] = {
    "num_generations": 8,
    "temperature": 0.9,
    "beta": 0.0,
    "learning_rate": 2.0e-6,
}

MANAGED_GRPO_FIELDS = {
    "output_dir": "set the top-level `output_dir:` (or --output-dir)",
    "deepspeed": "set the top-level `deepspeed:` (a JSON path)",
    "resume_from_checkpoint": "use `autodrive train --resume`",
    "remove_unused_columns": "the rewards read the `answer`, `options` and `question` columns",
    "reward_weights": "set the top-level `rewards:` weights",
}


class RLDatasetSpec(Strict):
    """The prompts: a build or release folder's MCQ configs (see trainer/rl/export.py)."""

    path: str = Field(description="build folder or release folder (vX.Y.Z)")
    configs: list[str] = Field(
        default_factory=lambda: ["mcq", "reasoning_mcq"],
        description="MCQ configs whose rows become prompts (reasoning_mcq when built)",
    )
    split: str = "train"


class RewardWeights(Strict):
    """Weights of the two rewards (TRL sums them weighted per completion)."""

    answer: float = Field(1.0, ge=0, description="parsed <answer> == gold letter")
    format: float = Field(1.0, ge=0, description="<think>...</think> then <answer>X</answer>")

    def as_list(self) -> list[float]:
        return [self.answer, self.format]  # the order of rewards.trl_reward_funcs()


class GRPORecipe(Strict):
    """A whole GRPO run."""

    model: ModelSpec
    dataset: RLDatasetSpec
    video: VideoSpec
    rewards: RewardWeights = Field(default_factory=RewardWeights)
    grpo: dict[str, Any] = Field(default_factory=dict)
    deepspeed: str | None = Field(None, description="DeepSpeed JSON (bundled or a path)")
    output_dir: str

    @model_validator(mode="after")
    def _checks(self) -> GRPORecipe:
        if not any(self.rewards.as_list()):
            raise ValueError("rewards: every weight is 0; nothing would be learnt")
        if self.grpo.get("use_vllm") and self.grpo.get("use_cpu"):
            raise ValueError("grpo: use_vllm needs GPUs; drop it (or use_cpu) for a CPU run")
        mode = self.grpo.get("vllm_mode", "colocate")
        if mode not in ("server", "colocate"):
            raise ValueError(f"grpo.vllm_mode: {mode!r}: use server or colocate")
        return self

    def grpo_fields(self) -> dict[str, Any]:
        """The recipe's `grpo:` fields over the Cosmos-Reason1 defaults."""
        return {**GRPO_DEFAULTS, **self.grpo}


def is_grpo_recipe(path: str | Path) -> bool:
    """Whether a training recipe is a GRPO one (it has a `grpo:` section)."""
    return "grpo" in read_yaml_mapping(path, "a training recipe")


def load_grpo_recipe(path: str | Path, *, check_grpo: bool = True) -> GRPORecipe:
    """Load and validate a GRPO recipe; raise ValueError naming the file and key path."""
    recipe = validate_model(path, GRPORecipe, read_yaml_mapping(path, "a GRPO recipe"))
    if check_grpo:
        problems = check_grpo_fields(recipe.grpo)
        if problems:
            raise ValueError("\n".join(f"{path}: grpo.{key}: {why}" for key, why in problems))
    return recipe


def grpo_field_names() -> list[str] | None:
    """Field names of the installed TRL's `GRPOConfig`, or None when TRL is not installed."""
    import dataclasses

    try:
        from trl import GRPOConfig
    except ImportError:
        return None
    return [f.name for f in dataclasses.fields(GRPOConfig)]


def check_grpo_fields(grpo: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, reason) for every `grpo:` key that is not a settable GRPOConfig field."""
    problems = []
    names = grpo_field_names()
    for key in grpo:
        if key in MANAGED_GRPO_FIELDS:
            problems.append((key, f"set by the trainer wrapper: {MANAGED_GRPO_FIELDS[key]}"))
        elif names is not None and key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append((key, f"not a field of TRL's GRPOConfig{hint}"))
    return problems
