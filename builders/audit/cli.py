"""`autodrive audit BUILD`: the parser entry and its thin handler (vlm_autodrive/cli.py
adds it, as it adds `show`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_audit_parser(sub: argparse._SubParsersAction) -> None:
    """`autodrive audit BUILD [--threshold T] [--bytes-only] [--no-plots]`."""
    a = sub.add_parser(
        "audit",
        help="is the dataset any good: blind baselines, duplicates, statistics",
        description="Audit a build folder and write BUILD/audit/ (report.json, report.md, "
        "PNG plots). Blind answerability of every multiple-choice config: baselines that "
        "never see the video (most frequent letter, longest option, option sharing most "
        "words with the question, option whose words the question holds) against chance "
        "with 95%% intervals, per config and class; a config over chance + 5 points is "
        "flagged with its leaking rows. Duplicates: byte-identical sources and clips, "
        "near-duplicate sources (a perceptual hash of 8 frames), repeated questions. "
        "Statistics per config, side and class: rows, generation yield and failures, "
        "token lengths, answer-letter balance, distinct n-grams, hours of video, clips "
        "per source. Reads the build; writes only BUILD/audit/.",
    )
    a.add_argument("build", type=Path, metavar="BUILD", help="the build folder")
    a.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="perceptual distance at or below which two sources are near-duplicates "
        "(default 0.03; see README 'Audit a build')",
    )
    a.add_argument(
        "--bytes-only",
        action="store_true",
        help="find byte-identical files only: decode no frame (no near-duplicates)",
    )
    a.add_argument("--no-plots", action="store_true", help="write no PNG")
    a.set_defaults(func=cmd_audit)


def cmd_audit(args) -> int:
    """Run the audit, print its summary; 0 (a flagged leak is a finding, not a failure)."""
    import sys

    from vlm_autodrive.builders.audit.phash import DEFAULT_THRESHOLD
    from vlm_autodrive.builders.audit.stage import run_audit
    from vlm_autodrive.builders.core.lock import build_lock

    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    if not 0.0 <= threshold <= 2.0:
        raise ValueError(f"--threshold {threshold}: a distance between 0 and 2")
    if not args.build.is_dir():
        raise FileNotFoundError(f"{args.build}: no such build folder")
    # The build's lock: a build writing the folder meanwhile would be audited half-written.
    with build_lock(args.build, " ".join(["autodrive", *sys.argv[1:]]), create=False):
        report = run_audit(
            args.build,
            threshold=threshold,
            perceptual=not args.bytes_only,
            plots=not args.no_plots,
        )
    print(report.summary())
    return 0
