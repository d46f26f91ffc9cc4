"""Training recipes: one validated YAML naming the model, the data, the video budget, the
TRL `SFTConfig` fields and the DeepSpeed config.

    model:    {id: nvidia/Cosmos-Reason1-7B, revision: <commit>}  or  {path: local/folder}
    dataset:  {repo: org/name, revision: v1.2.0, config: mix-paper, split: train}
              or  {path: build/quickstart, config: mix-quickstart}
    video:    {fps: 30, max_frames: 180, max_pixels: 81920}
    global_batch_size: 8       # optional: gradient accumulation is derived per world size
    sft:      {learning_rate: 1.0e-5, ...}   # any field of TRL's SFTConfig
    deepspeed: recipes/deepspeed/zero3.json  # optional
    output_dir: build/train/NAME

A bad recipe fails at load with the file and the dotted key path (unknown keys, wrong
types). `sft:` keys are checked against the installed TRL's `SFTConfig` fields when TRL
is importable (the training environment); a few fields the wrapper sets itself are
refused there, with the reason.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from vlm_autodrive.builders.core.errors import InputError
from vlm_autodrive.builders.core.strict import Strict, read_yaml_mapping, validate_model

# SFTConfig fields the wrapper owns, and why a recipe may not set them.
MANAGED_SFT_FIELDS = {
    "output_dir": "set the top-level `output_dir:` (or --output-dir)",
    "deepspeed": "set the top-level `deepspeed:` (a JSON path)",
    "resume_from_checkpoint": "use `autodrive train --resume`",
    "remove_unused_columns": "the collator needs the raw `messages` column (always false)",
    "dataset_kwargs": "rows are never pre-tokenized: the collator encodes video on the fly",
    "assistant_only_loss": "the loss is always on assistant tokens only",
    "completion_only_loss": "the loss is always on assistant tokens only",
    "packing": "video samples are never packed",
    "padding_free": "video samples are padded per batch",
}


class ModelSpec(Strict):
    """The model to fine-tune: a Hub id (with a revision) or a local folder."""

    id: str | None = Field(None, description="Hub model id, e.g. nvidia/Cosmos-Reason1-7B")
    path: str | None = Field(None, description="local folder in Hugging Face format")
    revision: str | None = Field(None, description="branch, tag or commit of a Hub model")
    dtype: Literal["bfloat16", "float16", "float32", "auto"] = "bfloat16"
    attn_implementation: str = Field("sdpa", description="sdpa, eager, flash_attention_2")

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.id is None) == (self.path is None):
            raise ValueError("give exactly one of `id` (Hub) or `path` (local folder)")
        if self.path is not None and self.revision is not None:
            raise ValueError("`revision` is for Hub models; a local `path` has none")
        return self

    @property
    def ref(self) -> str:
        return self.id if self.id is not None else self.path  # type: ignore[return-value]


class DatasetSpec(Strict):
    """The mixture to train on: a Hub dataset pinned to a revision, or a local folder."""

    repo: str | None = Field(None, description="Hub dataset repo, e.g. org/dashcam-events")
    revision: str | None = Field(None, description="tag (v1.2.0) or commit; required for repo")
    path: str | None = Field(None, description="local dataset folder (a build or publish target)")
    config: str = Field(description="the mixture's config name, e.g. mix-paper")
    split: str = "train"

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        if (self.repo is None) == (self.path is None):
            raise ValueError("give exactly one of `repo` (Hub) or `path` (local folder)")
        if self.repo is not None and not self.revision:
            raise ValueError(
                "a Hub dataset needs a pinned `revision` (a version tag such as v1.0.0, or a "
                "commit), so a run can be reproduced"
            )
        if self.path is not None and self.revision is not None:
            raise ValueError("`revision` is for Hub datasets; a local `path` has none")
        return self


class VideoSpec(Strict):
    """What the model sees of each clip (see trainer/video.py). Memory decides these."""

    fps: float = Field(gt=0, description="frames kept per second of clip")
    max_frames: int = Field(ge=1, description="cap; longer clips are sampled more sparsely")
    max_pixels: int = Field(ge=784, description="per-frame pixel budget (>= one 28x28 patch)")


class TrainRecipe(Strict):
    """A whole training run."""

    model: ModelSpec
    dataset: DatasetSpec
    video: VideoSpec
    global_batch_size: int | None = Field(
        None, ge=1, description="samples per optimizer step over all GPUs and accumulation"
    )
    sft: dict[str, Any] = Field(default_factory=dict)
    deepspeed: str | None = Field(None, description="DeepSpeed JSON (bundled or a path)")
    output_dir: str

    @model_validator(mode="after")
    def _batch_is_set_once(self) -> TrainRecipe:
        if self.global_batch_size and "gradient_accumulation_steps" in self.sft:
            raise ValueError(
                "set either global_batch_size or sft.gradient_accumulation_steps, not both"
            )
        return self

    def gradient_accumulation(self, world_size: int) -> int:
        """Accumulation steps that make `global_batch_size` on `world_size` processes."""
        per_device = int(self.sft.get("per_device_train_batch_size", 8))
        if not self.global_batch_size:
            return int(self.sft.get("gradient_accumulation_steps", 1))
        step = per_device * world_size
        if self.global_batch_size % step:
            raise ValueError(
                f"global_batch_size {self.global_batch_size} is not a multiple of "
                f"per_device_train_batch_size {per_device} x {world_size} processes"
            )
        return self.global_batch_size // step


def load_train_recipe(path: str | Path, *, check_sft: bool = True) -> TrainRecipe:
    """Load and validate a training recipe; raise ValueError naming the file and key path.

    With `check_sft` (the default), `sft:` keys are checked against TRL's `SFTConfig`,
    which needs TRL installed (`.venv-train`); without TRL the check is skipped.
    """
    recipe = validate_model(path, TrainRecipe, read_yaml_mapping(path, "a training recipe"))
    if check_sft:
        problems = check_sft_fields(recipe.sft)
        if problems:
            raise ValueError("\n".join(f"{path}: sft.{key}: {why}" for key, why in problems))
    return recipe


# Values the bundled recipes carry where the user's own belong (`repo: your-org/...`).
_PLACEHOLDER = re.compile(r"(^|/)(your-org|your-name|ORG|NAME)(/|$)|<[^>]*>")


def check_sources(recipe: Any, path: str | Path) -> None:
    """Before any heavy import or download: a local model or dataset folder that is not
    there, or a placeholder Hub id, is an InputError naming the recipe key (transformers
    would say `Repo id must be in the form ...`; offline, the Hub client a traceback)."""
    model, dataset = recipe.model, recipe.dataset
    if model.path is not None and not Path(model.path).is_dir():
        raise InputError(path, f"{model.path}: no such model folder", "model.path")
    for key, value in (("model.id", model.id), ("dataset.repo", getattr(dataset, "repo", None))):
        if value is not None and _PLACEHOLDER.search(value):
            raise InputError(
                path,
                f"{value!r} is the recipe's placeholder: put the Hub id of your own "
                f"{key.split('.')[0]} there, or use `{key.split('.')[0]}.path` for a local folder",
                key,
            )
    local = getattr(dataset, "path", None)
    if local is not None and not Path(local).is_dir():
        raise InputError(path, f"{local}: no such dataset folder", "dataset.path")


def sft_field_names() -> list[str] | None:
    """Field names of the installed TRL's `SFTConfig`, or None when TRL is not installed."""
    import dataclasses

    try:
        from trl import SFTConfig
    except ImportError:
        return None
    return [f.name for f in dataclasses.fields(SFTConfig)]


def check_sft_fields(sft: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, reason) for every `sft:` key that is not a settable SFTConfig field."""
    problems = []
    names = sft_field_names()
    for key in sft:
        if key in MANAGED_SFT_FIELDS:
            problems.append((key, f"set by the trainer wrapper: {MANAGED_SFT_FIELDS[key]}"))
        elif names is not None and key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append((key, f"not a field of TRL's SFTConfig{hint}"))
    return problems
