"""`autodrive train` with a GRPO recipe: TRL's `GRPOTrainer` on a Qwen2.5-VL-family model,
rewarded by the eval's own answer parser. The pair of trainer/rl/config.py.

In: a GRPO recipe. Out, in `output_dir`: checkpoints (`checkpoint-N/`, Hugging Face
format), the final model and processor (loadable by `autodrive eval` like an SFT run's),
and `train_summary.json` (steps, loss, mean rewards per function over the run).

What the wrapper adds to TRL:

1. the prompts: the MCQ train rows of the recipe's folder, asked as `autodrive eval
   --mode reasoning` asks (trainer/rl/export.py), every clip path checked before the
   model is loaded;
2. video as images: TRL's GRPOTrainer takes images, not video, for VLMs. Each row's clip
   is sampled with the SFT recipe's frame sampler and budget (trainer/video.py: `fps`,
   `max_frames`, `max_pixels`) when the row is read, and its video part becomes one image
   part per frame, the frames going into the `images` column TRL reads. The model sees
   the frames as a sequence of images (no temporal position ids between them), not as
   a video: true video RL is the cosmos-rl route (recipes/train/cosmos_rl_grpo.toml);
3. the rewards (trainer/rl/rewards.py) with the recipe's weights, `GRPOConfig` from the
   recipe over Cosmos-Reason1's defaults; generation is TRL's: `model.generate` (the CPU
   default) or vLLM with `grpo.use_vllm` (`vllm_mode: colocate` or `server`, GPUs);
4. checkpoints reloaded through `from_pretrained` (the SFT trainer's fix), `--resume`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from vlm_autodrive.trainer.rl.config import GRPORecipe
from vlm_autodrive.trainer.train.trainer import (
    TrainResult,
    _load_model,
    _say,
    _single_process_group,
    run_result,
)
from vlm_autodrive.trainer.video import VideoSettings

SUMMARY = "train_summary.json"


def train_grpo(
    recipe: GRPORecipe,
    *,
    output_dir: str | None = None,
    max_steps: int | None = None,
    resume: bool = False,
    extra_reward_funcs: tuple = (),
) -> TrainResult:
    """Run the GRPO recipe. `output_dir`/`max_steps` override the recipe; `resume` continues
    from the last checkpoint. `extra_reward_funcs` (weight 1 each) are for tests: a random
    model never earns the recipe's rewards, so its groups have no reward variance and no
    gradient. Raises ValueError for bad input, with the recipe key to change."""
    from transformers import AutoProcessor
    from transformers.trainer_utils import get_last_checkpoint

    from vlm_autodrive.trainer.rl.export import prompt_rows
    from vlm_autodrive.trainer.rl.rewards import trl_reward_funcs

    out = Path(output_dir or recipe.output_dir)
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if last and not resume:
        raise ValueError(
            f"{out} already holds checkpoints (last: {Path(last).name}); pass --resume to "
            "continue from it, or choose another --output-dir"
        )
    root = Path(recipe.dataset.path)
    rows, per_config, duplicates = prompt_rows(
        root, split=recipe.dataset.split, configs=tuple(recipe.dataset.configs)
    )
    clips = _check_clips(rows, root)
    read = ", ".join(f"{k} {v}" for k, v in per_config.items())
    _say(
        f"prompts: {root} [{read} rows]: {len(rows)} distinct prompts ({duplicates} "
        f"duplicates dropped), {clips} clips, all found"
    )

    processor = AutoProcessor.from_pretrained(recipe.model.ref, revision=recipe.model.revision)
    ip, vp = processor.image_processor, processor.video_processor
    settings = VideoSettings(
        fps=recipe.video.fps,
        max_frames=recipe.video.max_frames,
        max_pixels=recipe.video.max_pixels,
        factor=ip.patch_size * ip.merge_size,
        frame_multiple=vp.temporal_patch_size,  # the same frames as the SFT collator
    )
    dataset = _dataset(rows).with_transform(FramesAsImages(root, settings))
    v = recipe.video
    _say(f"video as images: {v.fps:g} fps, at most {v.max_frames} frames of {v.max_pixels} px")

    if recipe.deepspeed:
        _single_process_group()
    funcs = [*trl_reward_funcs(), *extra_reward_funcs]
    weights = [*recipe.rewards.as_list(), *[1.0] * len(extra_reward_funcs)]
    args = _grpo_config(recipe, out, max_steps, weights)
    model = _load_model(recipe)
    from vlm_autodrive.trainer.rl.video_grpo import VideoGRPOTrainer  # imports TRL

    trainer = VideoGRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=dataset,
        processing_class=processor,
    )
    resumed = last if resume else None
    note = f" (resuming {resumed})" if resumed else " (no checkpoint yet)" if resume else ""
    gen = "vLLM " + args.vllm_mode if args.use_vllm else "model.generate"
    _say(
        f"GRPO {recipe.model.ref} -> {out}{note}: {args.num_generations} generations a "
        f"prompt ({gen}), temperature {args.temperature:g}, beta {args.beta:g}, "
        f"lr {args.learning_rate:g}"
    )
    result = trainer.train(resume_from_checkpoint=resumed)
    trainer.save_model(str(out))
    return _finish(trainer, result, out, len(rows), clips, resumed)


class FramesAsImages:
    """`datasets` transform: each row's clip -> its sampled frames as PIL images in
    `images`, and the prompt's video part -> that many image placeholders (TRL fills them
    from `images`). Raises VideoDecodeError for a clip that cannot be decoded."""

    def __init__(self, root: Path, settings: VideoSettings):
        self.root = Path(root)
        self.settings = settings

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        from PIL import Image

        from vlm_autodrive.trainer.video import sample_video

        batch = dict(batch)
        prompts, images = [], []
        for prompt, video in zip(batch["prompt"], batch["video"]):
            clip = sample_video(self.root / video, self.settings)
            prompts.append(image_prompt(prompt, len(clip.frames)))
            images.append([Image.fromarray(f) for f in clip.frames])
        batch["prompt"], batch["images"] = prompts, images
        return batch


def image_prompt(prompt: list[dict[str, Any]], frames: int) -> list[dict[str, Any]]:
    """The prompt with its video part replaced by `frames` image placeholders, and every
    part's empty keys dropped (Arrow gives each part all of them)."""
    turns = []
    for turn in prompt:
        content = []
        for part in turn["content"]:
            if part["type"] == "video":
                content += [{"type": "image"} for _ in range(frames)]
            else:
                content.append({k: v for k, v in part.items() if v is not None and k != "video"})
        turns.append({"role": turn["role"], "content": content})
    return turns


def _dataset(rows: list[dict[str, Any]]):
    import datasets

    keep = ("id", "clip_id", "label", "question", "options", "answer", "video", "prompt")
    return datasets.Dataset.from_list([{k: r[k] for k in keep} for r in rows])


def _check_clips(rows: list[dict[str, Any]], root: Path, show: int = 5) -> int:
    base = root.resolve()
    clips = sorted({r["video"] for r in rows})
    missing = [c for c in clips if not (base / c).resolve().is_file()]
    if missing:
        raise ValueError(
            f"{len(missing)} of {len(clips)} clip paths do not resolve to files under {root}, "
            f"e.g.: " + "; ".join(missing[:show])
        )
    return len(clips)


def _grpo_config(recipe: GRPORecipe, out: Path, max_steps: int | None, weights: list[float]):
    from trl import GRPOConfig

    from vlm_autodrive.resources import resolve_recipe_path

    fields = recipe.grpo_fields()
    if max_steps is not None:
        fields["max_steps"] = max_steps
    if recipe.deepspeed:
        fields["deepspeed"] = str(resolve_recipe_path(recipe.deepspeed))
    fields.update(output_dir=str(out), remove_unused_columns=False, reward_weights=weights)
    try:
        return GRPOConfig(**fields)
    except (TypeError, ValueError) as e:
        raise ValueError(f"grpo: {e}") from None


def _finish(trainer, result, out: Path, rows: int, clips: int, resumed: str | None) -> TrainResult:
    summary = run_result(result, out, rows, clips, resumed)
    if trainer.is_world_process_zero():
        from dataclasses import asdict

        logs = trainer.state.log_history
        means = {}
        for key in sorted({k for e in logs for k in e if k.startswith("rewards/")}):
            values = [e[key] for e in logs if key in e]
            means[key] = sum(values) / len(values)
        data = {**asdict(summary), "kind": "grpo", "reward_means": means}
        (out / SUMMARY).write_text(json.dumps(data, indent=2) + "\n")
    if int(os.environ.get("RANK", "0")) == 0 and not summary.train_loss:
        print("note: loss 0 means no group had reward variance (every completion scored alike)")
    return summary
