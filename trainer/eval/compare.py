"""`autodrive eval compare A B ...`: the paired difference of each run against the first.

In: report folders (or `report.json` files) as `trainer/eval/harness.py` writes them, each
with its `predictions.parquet`. Out: Markdown: per answer mode both runs measured, B - A
for every metric on the clips both answered, with a 95% bootstrap interval that resamples
source videos (the same draws for both runs, so what a video's clips share cancels), and
McNemar's exact test on accuracy. A mode only one run has is paired with the other's
single mode when each run has one (e.g. a blind run against a direct one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vlm_autodrive.trainer.eval.report import load_report

METRIC_ROWS = [("accuracy", "Accuracy", True), ("binary_accuracy", "Binary acc.", True)]


def report_path(path: Path) -> Path:
    """A report folder's `report.json`, or the file itself."""
    return path / "report.json" if path.is_dir() else path


def load_predictions(report_file: Path, report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The prediction rows beside a report (ValueError naming the file when missing)."""
    import pyarrow.parquet as pq

    path = report_file.parent / report.get("files", {}).get("predictions", "predictions.parquet")
    if not path.is_file():
        raise ValueError(f"{path}: no predictions beside {report_file}; paired comparison needs it")
    return pq.read_table(path).to_pylist()


def mode_pairs(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (mode of A, mode of B) pairs to compare."""
    modes_a = [r["mode"] for r in a["results"]]
    modes_b = [r["mode"] for r in b["results"]]
    common = [(m, m) for m in modes_a if m in modes_b]
    if not common and len(modes_a) == len(modes_b) == 1:
        return [(modes_a[0], modes_b[0])]
    return common


def paired_markdown(paths: Sequence[Path]) -> str:
    """The paired sections of every report against the first (see the module docstring)."""
    from vlm_autodrive.trainer.eval.bootstrap import paired_difference

    files = [report_path(p) for p in paths]
    reports = [load_report(f) for f in files]
    preds = [load_predictions(f, r) for f, r in zip(files, reports)]
    lines = []
    base, base_preds = reports[0], preds[0]
    for other, other_preds, f in zip(reports[1:], preds[1:], files[1:]):
        classes = base["classes"]
        if other["classes"] != classes or other["normal"] != base["normal"]:
            lines += ["", f"**{_name(other)}** has other classes than {_name(base)}: not paired."]
            continue
        for mode_a, mode_b in mode_pairs(base, other):
            a = _by_clip(base_preds, mode_a, files[0])
            b = _by_clip(other_preds, mode_b, f)
            keys = sorted(set(a) & set(b))
            if not keys:
                lines += ["", f"{_name(base)} and {_name(other)} share no clips: not paired."]
                continue
            for k in keys:
                if a[k]["gold"] != b[k]["gold"]:
                    raise ValueError(
                        f"clip {k}: gold {a[k]['gold']!r} in {files[0]}, {b[k]['gold']!r} in {f}"
                    )
            clusters = [a[k].get("video_id") or a[k]["clip_id"] for k in keys]
            diff = paired_difference(
                [a[k]["gold"] for k in keys],
                [a[k]["prediction"] for k in keys],
                [b[k]["prediction"] for k in keys],
                clusters,
                classes,
                base["normal"],
            )
            lines += _section(base, other, mode_a, mode_b, diff, len(a), len(b))
    return "\n".join(lines)


def _by_clip(preds, mode: str, where: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for p in preds:
        if p["mode"] == mode:
            key = p.get("id") or p["clip_id"]
            if key in out:
                raise ValueError(f"{where}: clip {key} twice in mode {mode}")
            out[key] = p
    return out


def _name(report: Mapping[str, Any]) -> str:
    return str(report["name"]).replace("|", "\\|")


def _section(base, other, mode_a, mode_b, diff, n_a, n_b) -> list[str]:
    a, b = _name(base), _name(other)
    boot = diff["bootstrap"]
    head = f"B - A, {b} ({mode_b}) minus {a} ({mode_a})"
    lines = [
        "",
        f"## Paired: {head}",
        "",
        f"On the {diff['clips']} clips both answered ({boot['clusters']} source videos"
        + (f"; A has {n_a}, B has {n_b}" if n_a != n_b or n_a != diff["clips"] else "")
        + f"). Interval: {round(100 * boot['level'])}% percentile bootstrap over source "
        f"videos, {boot['resamples']} resamples, seed {boot['seed']}.",
        "",
        "| Metric | A | B | B - A | 95% interval |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    rows = [(diff[k], label, pct) for k, label, pct in METRIC_ROWS]
    rows += [(diff["macro"][k], f"Macro {k}", False) for k in ("precision", "recall", "f1")]
    for c in base["classes"]:
        rows += [
            (diff["per_class"][c][k], f"{c} {k}", False) for k in ("precision", "recall", "f1")
        ]
    for d, label, pct in rows:
        lines.append(
            f"| {label} | {_num(d['a'], pct)} | {_num(d['b'], pct)} | "
            f"{_num(d['difference'], pct, signed=True)} | {_span(d['interval'], pct)} |"
        )
    mc = diff["mcnemar"]
    lines += [
        "",
        f"McNemar's exact test on accuracy: only A right on {mc['only_a_correct']} clips, "
        f"only B right on {mc['only_b_correct']}; two-sided p = {mc['p_value']:.4g}. It "
        "treats clips as independent; the interval above resamples whole videos.",
    ]
    return lines


def _num(x: float | None, pct: bool, signed: bool = False) -> str:
    if x is None:
        return "–"
    sign = "+" if signed else ""
    return f"{100 * x:{sign}.2f}" + (" pts" if signed else "%") if pct else f"{x:{sign}.3f}"


def _span(iv: Sequence[float] | None, pct: bool) -> str:
    if not iv:
        return "–"
    scale, fmt = (100, "+.1f") if pct else (1, "+.3f")
    return f"[{scale * iv[0]:{fmt}}, {scale * iv[1]:{fmt}}]"
