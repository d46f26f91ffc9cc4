"""What the stage commands print: ingest's and chunk's conserved counts and rejects.

In: a stage's result and its build folder; `out` writes one line (print by default;
the pipeline passes its own). Shared by `autodrive build` (through builders/pipeline.py),
`autodrive ingest`, `autodrive chunk` and `autodrive frames-to-video`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def print_ingest(res, build: Path, out: Callable[[str], None] = print) -> None:
    note = " (unchanged inputs: reused the finished ingest)" if res.skipped else ""
    out(
        f"  manifest rows {res.rows} = videos {len(res.videos)} + rejected {len(res.rejects)}{note}"
    )
    print_rejects(res.rejects, build / "ingest" / "rejects.jsonl", out)


def print_rejects(rejects, path: Path, out: Callable[[str], None] = print) -> None:
    """Rejects grouped by reason with a few examples each; the file lists them all."""
    from vlm_autodrive.builders.core.rejects import format_rejects

    if rejects:
        out(format_rejects(rejects, path))


def print_chunk(res, build: Path, out: Callable[[str], None] = print) -> None:
    out(
        f"  videos {res.videos} (cut now {res.cut_now}, of them re-cut after a change "
        f"{res.recut}; already done {res.videos - res.cut_now}; removed {res.removed}), "
        f"rejected {len(res.rejects)}"
    )
    drops = ", ".join(f"{k} {v}" for k, v in sorted(res.dropped.items())) or "none"
    rejected = res.summary.get(
        "windows_of_rejected_videos", res.planned - len(res.clips) - sum(res.dropped.values())
    )
    out(
        f"  windows planned {res.planned} = clips {len(res.clips)} + dropped ({drops})"
        f" + windows of rejected videos {rejected}"
    )
    for label, n in res.by_label.items():
        out(f"    {label:<16} {n:>6} clips")
    ev = dict(res.summary.get("event_videos", {}))
    if ev.get("total"):
        total = ev.pop("total")
        out(f"  event videos {total} = " + " + ".join(f"{k} {v}" for k, v in ev.items()))
    if res.summary.get("videos_whole"):
        out(f"  videos shorter than a window, cut whole: {res.summary['videos_whole']}")
    stretch = res.summary.get("copy_stretch", {})
    if any(stretch.values()):
        out(
            f"  copy windows past max_copy_stretch: re-encoded {stretch['reencoded']}, "
            f"not cut {stretch['not_cut']}"
        )
    print_rejects(res.rejects, build / "chunk" / "rejects.jsonl", out)
