"""`autodrive audit BUILD`: the parser entry and its thin handler (vlm_autodrive/cli.py
adds it, as it adds `show`)."""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path


def add_audit_parser(sub: argparse._SubParsersAction) -> None:
    """`autodrive audit BUILD [--threshold T] [--bytes-only] [--no-plots]`."""
    a = sub.add_parser(
        "audit",
        help="is the dataset any good: blind baselines, answer letters, duplicates, statistics",
        description="Audit a build folder and write BUILD/audit/ (report.json, report.md, "
        "PNG plots). Blind answerability of every multiple-choice config: baselines that "
        "never see the video (most frequent letter, longest option, option sharing most "
        "words with the question, option whose words the question holds) against chance "
        "with 95% intervals, per config and class; a config over chance + 5 points is "
        "flagged with its leaking rows. Answer letters per config and side: a letter 5 "
        "points or more over its share under a uniform draw among the options, its 95% "
        "interval above it, is flagged (a model trained on it learns the letter). "
        "Duplicates: byte-identical sources and clips, "
        "near-duplicate sources (a perceptual hash of 8 frames), repeated questions. "
        "Statistics per config, side and class: rows, generation yield and failures, "
        "token lengths, answer-letter balance, distinct n-grams, hours of video, clips "
        "per source. Reads the build; writes BUILD/audit/ and the audit section of the "
        "dataset card (README.md). Nothing changed since the last audit: no work.",
    )
    a.add_argument("build", type=Path, metavar="BUILD", help="the build folder")
    a.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="perceptual distance at or below which two sources are near-duplicates "
        "(default 0.03; see docs/look/audit.md)",
    )
    a.add_argument(
        "--bytes-only",
        action="store_true",
        help="find byte-identical files only: decode no frame (no near-duplicates)",
    )
    a.add_argument("--no-plots", action="store_true", help="write no PNG")
    a.add_argument(
        "--text-model",
        metavar="NAME",
        help="also ask the recipe's model NAME (generate.models.NAME, e.g. text) every "
        "test question with its options and no video: the text-only model baseline "
        "(needs --recipe; a local_server model is started and stopped as build does)",
    )
    a.add_argument("--recipe", type=Path, help="the build recipe naming --text-model")
    a.set_defaults(func=cmd_audit)


def _text_model(args):
    """The model config `--text-model` names in `--recipe`, or None."""
    if args.text_model is None:
        return None
    if args.recipe is None:
        raise ValueError("--text-model needs --recipe (the recipe whose generate.models names it)")
    from vlm_autodrive.builders.recipe import load_recipe
    from vlm_autodrive.resources import resolve_recipe_path

    recipe = load_recipe(resolve_recipe_path(args.recipe))
    models = recipe.generate.models if recipe.generate else {}
    if args.text_model not in models:
        raise ValueError(
            f"{args.recipe}: generate.models: no model {args.text_model!r} "
            f"(it has: {', '.join(sorted(models)) or 'none'})"
        )
    return models[args.text_model]


def cmd_audit(args) -> int:
    """Run the audit, print its summary; 0 (a flagged leak is a finding, not a failure)."""
    import sys

    from vlm_autodrive.builders.audit.phash import DEFAULT_THRESHOLD
    from vlm_autodrive.builders.audit.stage import run_audit
    from vlm_autodrive.builders.core.lock import build_lock
    from vlm_autodrive.builders.release.readonly import refuse_release_folder

    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    if not 0.0 <= threshold <= 2.0:
        raise ValueError(f"--threshold {threshold}: a distance between 0 and 2")
    if not args.build.is_dir():
        raise FileNotFoundError(f"{args.build}: no such build folder")
    refuse_release_folder(args.build)  # it writes BUILD/audit/ and the card
    model = _text_model(args)
    # The build's lock: a build writing the folder meanwhile would be audited half-written.
    with (
        build_lock(args.build, " ".join(["autodrive", *sys.argv[1:]]), create=False),
        ExitStack() as stack,
    ):
        ask = None
        if model is not None:
            from vlm_autodrive.builders.audit.model import backend_answerer
            from vlm_autodrive.builders.generate.backends.factory import open_backend

            ask = backend_answerer(open_backend(model, stack, log_dir=args.build / "logs"))
        report = run_audit(
            args.build,
            threshold=threshold,
            perceptual=not args.bytes_only,
            ask=ask,
            plots=not args.no_plots,
        )
    print(report.summary())
    return 0
