"""The `autodrive train` command: its arguments and its handler.

`vlm_autodrive.cli` registers it with `add_train_parser(sub)`; it also runs on its own
as `python -m vlm_autodrive.trainer.train.cli RECIPE ...` (the same arguments). One
process trains on one device; `accelerate launch ... -m vlm_autodrive.cli train RECIPE`
starts one process per GPU (see the README for the multi-node command).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# What SFT and GRPO import (the `train` extra); found only in the `.venv-train` environment.
TRAIN_MODULES = ("torch", "torchvision", "transformers", "trl", "accelerate")


def add_train_parser(sub) -> argparse.ArgumentParser:
    """Add the `train` subcommand to an argparse subparsers object; return its parser."""
    t = sub.add_parser(
        "train",
        help="fine-tune a video VLM: SFT on a mixture (TRL SFTTrainer, DeepSpeed ZeRO-3), "
        "or GRPO after SFT (a recipe with a `grpo:` section)",
        description="Run a training recipe (recipes/train/*.yaml): load the mixture, check "
        "every clip path and the frame budget, then fine-tune with assistant-only loss. "
        "A recipe with a `grpo:` section runs TRL's GRPOTrainer on the MCQ train "
        "prompts instead, rewarded by the eval's answer parser (recipes/train/grpo_*.yaml). "
        "Checkpoints and the final model are written in Hugging Face format. Needs the "
        "training environment (`make .venv-train/.installed`). For several GPUs or nodes: "
        "`accelerate launch ... -m vlm_autodrive.cli train RECIPE`.",
    )
    _arguments(t)
    t.set_defaults(func=run_train)
    return t


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", type=Path, help="e.g. recipes/train/cosmos_reason1_7b.yaml")
    p.add_argument("--output-dir", help="override the recipe's output_dir")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint in the output folder (fresh start if none)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="the output folder was trained from another recipe or data: empty it and start over",
    )


def run_train(args: argparse.Namespace) -> int:
    """Handler: load the recipe, train, print the summary. Bad input raises ValueError
    (the CLI prints it and exits 2)."""
    from vlm_autodrive.environments import command_args, require_environment
    from vlm_autodrive.resources import resolve_recipe_path

    # Before anything is read: run from `.venv`, say where training runs instead.
    require_environment("train", TRAIN_MODULES, command_args("train", [str(args.recipe)]))
    from vlm_autodrive.trainer.rl.config import is_grpo_recipe, load_grpo_recipe

    path = resolve_recipe_path(args.recipe)
    kwargs = {"output_dir": args.output_dir, "max_steps": args.max_steps, "resume": args.resume}
    if is_grpo_recipe(path):  # a `grpo:` section: RL after SFT (trainer/rl/)
        from vlm_autodrive.trainer.train.config import check_sources

        recipe = load_grpo_recipe(path)
        check_sources(recipe, path)  # before torch and transformers are imported
        from vlm_autodrive.trainer.rl.trainer import train_grpo

        result = train_grpo(recipe, **kwargs)
        loss = f"{result.train_loss:.4f}" if result.train_loss is not None else "n/a"
        print(f"done: GRPO step {result.global_step}, loss {loss}; model in {result.output_dir}")
        return 0
    from vlm_autodrive.trainer.train.config import check_sources, load_train_recipe

    recipe = load_train_recipe(path)
    check_sources(recipe, path)  # before torch and transformers are imported
    from vlm_autodrive.trainer.train.trainer import train

    result = train(recipe, **kwargs, force=args.force)
    loss = f"{result.train_loss:.4f}" if result.train_loss is not None else "n/a"
    print(
        f"done: step {result.global_step}, train loss {loss}; model in {result.output_dir}; "
        f"skipped {result.skipped_decode} undecodable, {result.skipped_too_long} too long"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point with the same arguments as `autodrive train`."""
    p = argparse.ArgumentParser(prog="autodrive train")
    _arguments(p)
    args = p.parse_args(argv)
    try:
        return run_train(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"autodrive: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
