"""Rejects as a person reads them: grouped by reason, with counts and a few examples.

A stage can reject thousands of rows for one cause (CCD's 801 entries without their
videos): printing each one buries the summary. `format_rejects` prints one group per
kind of reason (the reason with its file names, quoted values and numbers blanked out),
largest first, with the first few rows of each, and names the file that lists them all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from vlm_autodrive.builders.core.stage import RejectRecord
from vlm_autodrive.builders.core.terminal import one_line, printable

# What varies between rejects of one kind: quoted values, paths, numbers.
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_PATH = re.compile(r"(?:[\w.~-]*/[^\s,;:)]*)")
_NUMBER = re.compile(r"(?<![\w])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w])")
_LIST = re.compile(r"\[[^\]]*\]")


def reason_kind(reason: str) -> str:
    """The reason with what differs from row to row replaced by `…`:
    `file not found: /data/v1.mp4` -> `file not found: …`."""
    text = _LIST.sub("[…]", reason)
    text = _QUOTED.sub("…", text)
    text = _PATH.sub("…", text)
    text = _NUMBER.sub("…", text)
    return " ".join(text.split())


def group_rejects(rejects: Sequence[RejectRecord]) -> list[tuple[str, list[RejectRecord]]]:
    """(kind, rejects of that kind) pairs, the largest group first, then by first seen."""
    groups: dict[str, list[RejectRecord]] = {}
    for r in rejects:
        groups.setdefault(reason_kind(r.reason), []).append(r)
    return sorted(groups.items(), key=lambda kv: -len(kv[1]))  # stable: first seen first


def format_rejects(
    rejects: Sequence[RejectRecord], path: str | Path, *, examples: int = 3, indent: str = "  "
) -> str:
    """The rejects grouped by reason, `examples` rows of each, and the file listing all.

    In: the rejects of one stage and the path of its rejects file. Out: lines to print
    (empty text when there are no rejects). Each example names the row (video id and
    `file:line`) and its full reason.
    """
    if not rejects:
        return ""
    groups = group_rejects(rejects)
    lines = [
        f"{indent}rejected {len(rejects)}, by reason ({len(groups)} kind"
        f"{'s' if len(groups) != 1 else ''}; every one with its line in {path}):"
    ]
    width = len(str(len(groups[0][1])))
    for kind, members in groups:
        lines.append(printable(f"{indent}  {len(members):>{width}}  {kind}"))
        pad = f"{indent}  {'':>{width}}    "
        for r in members[:examples]:
            where = f"{r.source}:{r.line}" if r.line else r.source
            # a manifest's values (ids, paths) may hold control characters, line feeds
            # included: escaped, one line per example
            lines.append(pad + one_line(f"{r.video_id or '?'} ({where}): {r.reason}"))
        if len(members) > examples:
            lines.append(f"{pad}... and {len(members) - examples} more")
    return "\n".join(lines)
