"""The `autodrive export-rl` command: its arguments and its handler (trainer/rl/export.py).

`vlm_autodrive.cli` registers it with `add_export_rl_parser(sub)`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_export_rl_parser(sub) -> argparse.ArgumentParser:
    e = sub.add_parser(
        "export-rl",
        help="export the MCQ train rows as RL prompts (TRL GRPOTrainer or cosmos-rl)",
        description="Write the train rows of the mcq config (and reasoning_mcq when built) "
        "of a build or release folder as GRPO prompt rows: `prompt` (the reasoning system "
        "turn, the clip's video part and the question as `autodrive eval --mode reasoning` "
        "asks it), `answer` (the gold letter), `video` (the clip). One row per distinct "
        "clip and question. --format trl writes OUT/train.parquet, --format cosmos-rl "
        "OUT/train.jsonl (read by vlm_autodrive.trainer.rl.cosmos_rl_dataset).",
    )
    e.add_argument("source", type=Path, help="build folder or release folder (vX.Y.Z)")
    e.add_argument("--out", type=Path, required=True, help="output folder")
    e.add_argument("--format", choices=["trl", "cosmos-rl"], default="trl")
    e.add_argument("--split", default="train")
    e.add_argument(
        "--configs", default="mcq,reasoning_mcq", help="MCQ configs to read (comma-separated)"
    )
    e.add_argument(
        "--clip-root",
        help="prefix of the clip paths written (where the training machines see the folder; "
        "default: relative paths for trl, this folder's absolute path for cosmos-rl)",
    )
    g = e.add_argument_group("cosmos-rl video sampling (qwen-vl-utils keys of the video part)")
    g.add_argument("--fps", type=float)
    g.add_argument("--max-frames", type=int)
    g.add_argument("--max-pixels", type=int)
    e.set_defaults(func=run_export_rl)
    return e


def run_export_rl(args: argparse.Namespace) -> int:
    from vlm_autodrive.trainer.rl.export import export_rl

    video = {"fps": args.fps, "max_frames": args.max_frames, "max_pixels": args.max_pixels}
    res = export_rl(
        args.source,
        args.out,
        args.format,
        split=args.split,
        configs=tuple(c.strip() for c in args.configs.split(",") if c.strip()),
        clip_root=args.clip_root,
        video_kwargs={k: v for k, v in video.items() if v is not None},
    )
    read = ", ".join(f"{k} {v}" for k, v in res.per_config.items())
    labels = ", ".join(f"{k} {v}" for k, v in res.per_label.items())
    print(
        f"{res.rows} prompts ({labels}) from {read} rows, {res.duplicates} duplicates "
        f"dropped -> {res.path}"
    )
    return 0
