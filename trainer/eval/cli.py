"""Argument parsing and handlers of `autodrive eval` and `autodrive eval compare`.

`add_eval_parser(sub)` registers both on the `autodrive` command's subparsers; the
handlers return the CLI's exit codes (0 done; 3 done but some requests failed; 2 bad
input is raised as ValueError / FileNotFoundError for `cli.main` to report). Importing
this module is cheap: the evaluation code loads when a handler runs.

Also runnable on its own: `python -m vlm_autodrive.trainer.eval.cli --model ... `.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vlm_autodrive.trainer.eval.runners.base import VideoSettings

# Without a training recipe: a cheap budget that still shows a 6 s event in 12 frames.
DEFAULT_FPS, DEFAULT_FRAMES = 2.0, 32

DESCRIPTION = (
    "Ask a model the multiple-choice question of every test clip (video + question), "
    "parse its answers and write the paper's Table 2 metrics: per-class precision, recall "
    "and F1, accuracy and binary anomaly accuracy, per answer mode, each with a 95% "
    "interval (bootstrap over source videos). Outputs under --out: "
    "predictions.parquet, report.json, report.md, confusion_<mode>.png, and outputs.jsonl "
    "(raw outputs; a re-run only generates what is missing)."
)


def add_eval_parser(sub) -> argparse.ArgumentParser:
    """Add `eval` (with its `compare` subcommand) to an argparse subparsers object."""
    e = sub.add_parser(
        "eval",
        help="evaluate a model on a dataset's MCQ test split (Table 2 report)",
        description=DESCRIPTION,
        epilog="Compare runs: `autodrive eval compare A/report.json B/report.json "
        "[--out compare.md]`.",
    )
    add_eval_arguments(e)
    e.set_defaults(func=cmd_eval)
    esub = e.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    c = esub.add_parser(
        "compare",
        help="put eval reports side by side, each paired against the first",
        description="One Table 2 with a row per model and mode from several report.json "
        "files, and what each was measured on (warns when the clip sets differ); then each "
        "report against the first: the paired difference of every metric on the clips both "
        "answered, with its 95% interval (bootstrap over source videos) and McNemar's exact "
        "test on accuracy (needs each report's predictions.parquet beside it).",
    )
    c.add_argument("reports", nargs="+", type=Path, help="report.json files (or their folders)")
    c.add_argument("--out", type=Path, help="Markdown file to write (default: print)")
    c.set_defaults(func=cmd_eval_compare)
    return e


def add_eval_arguments(e: argparse.ArgumentParser) -> None:
    """The flags of `autodrive eval` (model, dataset, modes, runner, video, output)."""
    e.add_argument("--model", help="local model folder, Hub-style id, or the served model name")
    e.add_argument(
        "--dataset", help="dataset folder (autodrive build/publish) or Hub id owner/name[@rev]"
    )
    e.add_argument("--config", default="mcq", help="multiple-choice config (default mcq)")
    e.add_argument("--split", default="test", help="split to evaluate (default test)")
    e.add_argument(
        "--mode",
        choices=["direct", "reasoning", "both", "blind"],
        default="direct",
        help="direct: answer with the letter; reasoning: think, then <answer>; both; "
        "blind: the direct question without the video (what the text alone gives away)",
    )
    e.add_argument("--name", help="model name in the report (default: the model folder's name)")
    e.add_argument(
        "--out",
        type=Path,
        help="output folder (default build/eval/ORG--MODEL[@REV]--DATASET-HASH, one per model, "
        "revision and dataset)",
    )
    e.add_argument("--limit", type=int, help="evaluate N clips, class-balanced (smoke runs)")
    e.add_argument("--taxonomy", type=Path, help="taxonomy YAML (default: bundled)")
    e.add_argument("--prompts", type=Path, help="folder with direct.jinja / reasoning.jinja")
    e.add_argument(
        "--system-prompt",
        default="driving_assistant",
        help="system turn in direct and blind mode: a bundled name (prompts/system/), a file, "
        "or none (default driving_assistant, as the bundled mixtures train)",
    )
    e.add_argument(
        "--reasoning-system-prompt",
        default="driving_reasoner",
        help="system turn in reasoning mode (default driving_reasoner)",
    )
    e.add_argument(
        "--max-new-tokens", type=int, help="generation cap (default 32 direct, 1024 reasoning)"
    )
    r = e.add_argument_group("runner")
    r.add_argument(
        "--runner",
        choices=["auto", "transformers", "vllm", "openai"],
        default="auto",
        help="transformers: the model in process (CPU or GPU); vllm: vLLM's in-process "
        "engine; openai: OpenAI-compatible servers at --base-url (`vllm serve`), or without "
        "--base-url a vLLM server started here for --model (auto: openai when --base-url is "
        "given, else transformers)",
    )
    r.add_argument(
        "--base-url", help="server URL(s), comma-separated, e.g. http://127.0.0.1:8000/v1"
    )
    r.add_argument("--served-model", help="model name on the server (default --model)")
    r.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="variable holding the API key, if any"
    )
    r.add_argument(
        "--video-url",
        choices=["file", "data"],
        default="file",
        help="file: file:// URLs (server needs --allowed-local-media-path over the clips); "
        "data: send the clip bytes inline (remote servers)",
    )
    r.add_argument("--concurrency", type=int, default=8, help="requests in flight (openai)")
    r.add_argument("--device", default="auto", help="transformers: auto, cpu, cuda, cuda:1 ...")
    r.add_argument("--dtype", default="auto", help="transformers: auto, bfloat16, float32 ...")
    v = e.add_argument_group("video input (as in training)")
    v.add_argument(
        "--video-from",
        type=Path,
        metavar="TRAIN_RECIPE",
        help="take fps, max frames and max pixels from a training recipe's `video:` section "
        "(flags below override it)",
    )
    v.add_argument("--fps", type=float, help=f"frames sampled per second ({DEFAULT_FPS:g})")
    v.add_argument("--max-frames", type=int, help=f"frames per clip at most ({DEFAULT_FRAMES})")
    v.add_argument("--max-pixels", type=int, help="pixels per frame at most (processor default)")


def cmd_eval(args) -> int:
    """Handler of `autodrive eval`."""
    from vlm_autodrive.trainer.eval.harness import EXIT_ERRORS, EvalConfig, run_eval

    if not args.model or not args.dataset:
        raise ValueError("autodrive eval needs --model and --dataset (or: eval compare ...)")
    if not args.base_url:  # the model is loaded here (or served from here): it must exist
        from vlm_autodrive.preflight import check_local_model

        check_local_model(args.model, "--model", "command line")
    modes = ("direct", "reasoning") if args.mode == "both" else (args.mode,)
    cfg = EvalConfig(
        model=args.model,
        dataset=args.dataset,
        config=args.config,
        split=args.split,
        modes=modes,
        runner=args.runner,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        served_model=args.served_model,
        video_url=args.video_url,
        video=video_settings(args),
        out=args.out,
        limit=args.limit,
        max_new_tokens=args.max_new_tokens,
        name=args.name,
        taxonomy=args.taxonomy,
        prompts=args.prompts,
        device=args.device,
        dtype=args.dtype,
        concurrency=args.concurrency,
        system_prompts={
            "direct": args.system_prompt,
            "reasoning": args.reasoning_system_prompt,
            "blind": args.system_prompt,
        },
    )
    res = run_eval(cfg)
    from vlm_autodrive.trainer.eval.report import table2

    print(table2([res.report]))
    print(f"\nwrote {res.out}/report.md, report.json, predictions.parquet, confusion_*.png")
    return EXIT_ERRORS if res.errors else 0


def video_settings(args) -> VideoSettings:
    """Flags first, then the training recipe's `video:` section, then the defaults."""
    from vlm_autodrive.trainer.eval.runners.base import VideoSettings

    fps, frames, pixels = DEFAULT_FPS, DEFAULT_FRAMES, None
    if args.video_from:
        from vlm_autodrive.trainer.train.config import load_train_recipe

        v = load_train_recipe(args.video_from, check_sft=False).video
        fps, frames, pixels = v.fps, v.max_frames, v.max_pixels
    return VideoSettings(
        args.fps if args.fps is not None else fps,
        args.max_frames if args.max_frames is not None else frames,
        args.max_pixels if args.max_pixels is not None else pixels,
    )


def cmd_eval_compare(args) -> int:
    """Handler of `autodrive eval compare`."""
    from vlm_autodrive.trainer.eval.report import compare_reports

    paths = [p / "report.json" if p.is_dir() else p for p in args.reports]
    text = compare_reports(paths, args.out)
    print(f"wrote {args.out}" if args.out else text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m vlm_autodrive.trainer.eval.cli ...`: the same as `autodrive eval ...`."""
    p = argparse.ArgumentParser(prog="autodrive")
    add_eval_parser(p.add_subparsers())
    args = p.parse_args(["eval", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"autodrive: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
