"""Evaluation reports: Markdown in the paper's Table 2 layout, confusion-matrix PNGs, and
`eval compare` (several reports side by side).

In: report dicts as `trainer/eval/harness.py` writes them to `report.json` (one model, one row
per answer mode; see `REPORT_FORMAT`). Out: Markdown text and PNG files. Nothing here
runs a model; a report can be re-rendered or compared anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.files import atomic_path, atomic_write_text

REPORT_FORMAT = "vlm-autodrive/eval-report/1"

UNPARSEABLE_RULE = (
    "Unparseable answers (no option found, several options, a letter that is no option, a "
    "letter whose text names another class, a runner error, or in reasoning mode an output "
    "without a closed <answer>...</answer>, which is never scanned for class names) are "
    "scored as the label `unparseable`: wrong for accuracy and for binary accuracy, a miss "
    "against the recall of the clip's gold class, and no class's prediction, so they do not "
    "change any class's precision. A class never predicted has precision 0."
)


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a `report.json`, checking that it is an evaluation report of a known format."""
    p = Path(path)
    data = json.loads(p.read_text())
    if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
        raise ValueError(f"{p}: not an evaluation report ({REPORT_FORMAT})")
    return data


def table2(reports: Sequence[Mapping[str, Any]], classes: Sequence[str] | None = None) -> str:
    """The Table 2 rows of several reports as one Markdown table.

    One row per (model, mode): per-class precision / recall / F1 (two decimals), accuracy
    and binary anomaly accuracy (percent, two decimals), then unparseable answers and the
    number of clips; each value with its 95% interval `[low, high]` when the report has
    them. `classes` sets the column order (default: the first report's, then any class
    only later reports have); a class a report lacks shows `–`.
    """
    if classes is None:
        classes = []
        for r in reports:
            classes += [c for c in r["classes"] if c not in classes]
    head = ["Model", "Mode"]
    for c in classes:
        head += [f"{c} P", f"{c} R", f"{c} F1"]
    head += ["Accuracy", "Binary acc.", "Unparseable", "N"]
    lines = [_row(head), _row(["---"] * 2 + ["---:"] * (len(head) - 2))]
    for r in reports:
        for res in r["results"]:
            m = res["metrics"]
            iv = m.get("intervals") or {}
            cells = [_escape(r["name"]), res["mode"]]
            for c in classes:
                pc, pci = m["per_class"].get(c), iv.get("per_class", {}).get(c, {})
                cells += (
                    [_value(pc[k], pci.get(k)) for k in ("precision", "recall", "f1")]
                    if pc
                    else ["–"] * 3
                )
            cells += [
                _value(m["accuracy"], iv.get("accuracy"), percent=True),
                _value(m["binary_accuracy"], iv.get("binary_accuracy"), percent=True),
                str(m["unparseable"]),
                str(m["n"]),
            ]
            lines.append(_row(cells))
    return "\n".join(lines)


def _value(value: float, interval: Sequence[float] | None, percent: bool = False) -> str:
    """`0.69 [0.60, 0.78]`, or `77.27% [71.7, 83.3]`; the value alone without an interval."""
    if percent:
        text = f"{100 * value:.2f}%"
        return f"{text} [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]" if interval else text
    return f"{value:.2f} [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else f"{value:.2f}"


def confusion_markdown(metrics: Mapping[str, Any]) -> str:
    """The confusion matrix as a Markdown table: rows gold, columns predicted."""
    conf = metrics["confusion"]
    lines = [
        _row(["gold \\ predicted", *conf["columns"], "total"]),
        _row(["---"] + ["---:"] * (len(conf["columns"]) + 1)),
    ]
    for gold, counts in zip(conf["rows"], conf["matrix"]):
        lines.append(_row([gold, *map(str, counts), str(sum(counts))]))
    return "\n".join(lines)


def report_markdown(report: Mapping[str, Any]) -> str:
    """The whole Markdown report of one evaluation run (one model, one or two modes)."""
    ds = report["dataset"]
    video = report["video"]
    per_class = ", ".join(f"{c} {n}" for c, n in ds["per_class"].items())
    limited = f", the first {ds['rows']} of a class-balanced order (`--limit`)"
    lines = [
        f"# Evaluation: {report['name']}",
        "",
        f"Model `{report['model']}` ({report['runner']['kind']} runner) on `{ds['source']}`"
        + (f" (revision `{ds['revision']}`)" if ds.get("revision") else "")
        + f", config `{ds['config']}`, split `{ds['split']}`: {ds['rows']} clips ({per_class})"
        + (limited if ds["limited"] else "")
        + ".",
        f"Video input: {_video_words(video)}." + _runner_words(report["runner"]),
        "",
        "## Results (the paper's Table 2 layout)",
        "",
        table2([report]),
        "",
        "P, R, F1: precision, recall and F1 per class. Accuracy: share of clips whose answer "
        "is the gold class. Binary acc.: normal driving vs. any event class. "
        "Unparseable: answers no option could be read from (counted as wrong).",
        *_bootstrap_words(report.get("bootstrap")),
    ]
    for res in report["results"]:
        parse = ", ".join(f"{k} {v}" for k, v in res["parse_status"].items())
        rules = ", ".join(f"{k} {v}" for k, v in res["parse_method"].items()) or "none"
        blind = _blind_words(res) if res.get("video_input") is False else ""
        lines += [
            "",
            f"## Mode `{res['mode']}`",
            "",
            f"Prompt `{res['prompt_template']}`, system prompt "
            f"{_code(res.get('system_prompt'))}, at most {res['max_new_tokens']} new tokens. "
            f"Answers: {parse} (read by rule: {rules}).{blind}",
            "",
            "Confusion matrix (rows: gold class, columns: parsed answer):",
            "",
            confusion_markdown(res["metrics"]),
        ]
        if res.get("confusion_png"):
            lines += ["", f"![confusion matrix, {res['mode']}]({res['confusion_png']})"]
    lines += ["", "## How unparseable answers count", "", UNPARSEABLE_RULE, ""]
    return "\n".join(lines)


def compare_markdown(reports: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    """Several reports side by side: one Table 2, then what each row was measured on.

    Warns when the reports were not measured on the same clips (their clip-set hashes
    differ), since their numbers are then not comparable.
    """
    lines = ["# Evaluation comparison", "", table2(reports), "", "Measured on:", ""]
    for r, name in zip(reports, names):
        ds = r["dataset"]
        prompts = ", ".join(f"{x['mode']} `{x['prompt_template']}`" for x in r["results"])
        lines.append(
            f"- {_escape(r['name'])} (`{name}`): `{ds['source']}` {ds['config']}/{ds['split']}, "
            f"{ds['rows']} clips (set `{ds['clips_sha256'][:12]}`); {_video_words(r['video'])}; "
            f"prompts {prompts}"
        )
    if len({r["dataset"]["clips_sha256"] for r in reports}) > 1:
        lines += [
            "",
            "**Warning:** these reports were measured on different sets of clips; "
            "their numbers are not directly comparable.",
        ]
    lines += ["", UNPARSEABLE_RULE, ""]
    return "\n".join(lines)


def write_confusion_png(metrics: Mapping[str, Any], title: str, path: Path) -> Path:
    """Draw the confusion matrix (counts, rows gold, columns predicted) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display here or on training nodes
    import matplotlib.pyplot as plt
    import numpy as np

    conf = metrics["confusion"]
    m = np.array(conf["matrix"], dtype=int)
    rows, cols = conf["rows"], conf["columns"]
    fig, ax = plt.subplots(figsize=(1.6 * len(cols) + 2.2, 1.2 * len(rows) + 1.8), dpi=110)
    ax.imshow(m, cmap="Blues", vmin=0, vmax=max(int(m.max()), 1))
    # Dark text on light cells, white on dark ones, so every count stays legible.
    limit = m.max() / 2 if m.size else 0
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            color = "white" if m[i, j] > limit else "black"
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color=color, fontsize=12)
    if len(cols) > len(rows):  # set the unparseable column apart from the classes
        ax.axvline(len(rows) - 0.5, color="grey", linewidth=2, linestyle="--")
    ax.set_xticks(range(len(cols)), [c.replace(" ", "\n") for c in cols])
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted (parsed answer)")
    ax.set_ylabel("gold")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def _video_words(video: Mapping[str, Any]) -> str:
    fps = f"{video['fps']:g} fps" if video.get("fps") else "the processor's default frame rate"
    frames = f"at most {video['max_frames']} frames" if video.get("max_frames") else "no frame cap"
    pixels = (
        f"at most {video['max_pixels']} pixels a frame"
        if video.get("max_pixels")
        else "the processor's default pixel budget"
    )
    return f"{fps}, {frames}, {pixels}"


def _runner_words(runner: Mapping[str, Any]) -> str:
    details = ", ".join(f"{k} `{v}`" for k, v in runner.items() if k != "kind")
    return f"\nRunner: {details}." if details else ""


def _code(text: str | None) -> str:
    return f"`{text}`" if text else "none"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def compare_reports(paths: Iterable[Path], out: Path | None = None) -> str:
    """The Markdown comparison of several `report.json` files (written to `out` if given):
    one table, then each run paired against the first (`compare.py`)."""
    paths = list(paths)
    if not paths:
        raise ValueError("give at least one report.json")
    text = compare_markdown([load_report(p) for p in paths], [str(p) for p in paths])
    if len(paths) > 1:
        from vlm_autodrive.trainer.eval.compare import paired_markdown

        text = text.rstrip("\n") + "\n" + paired_markdown(paths) + "\n"
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, text)
    return text


def _bootstrap_words(boot: Mapping[str, Any] | None) -> list[str]:
    """How the intervals in brackets were made (none in reports made before they were)."""
    if not boot:
        return []
    return [
        "",
        f"In brackets: {round(100 * boot['level'])}% intervals, a percentile bootstrap that "
        f"resamples the {boot['clusters']} source videos (clips of one video together), "
        f"{boot['resamples']} resamples, seed {boot['seed']}. Two runs differ credibly when "
        "`autodrive eval compare` puts their paired difference's interval off zero.",
    ]


def _blind_words(res: Mapping[str, Any]) -> str:
    """What a blind row says: its accuracy against guessing, with the interval."""
    words = (
        " Asked **blind**: the question and its options without the video, so this row "
        "measures what the text alone gives away."
    )
    chance = res.get("chance_accuracy")
    interval = res["metrics"].get("intervals", {}).get("accuracy")
    if chance is None or not interval:
        return words
    acc = res["metrics"]["accuracy"]
    verdict = (
        "above chance: the questions can be answered in part without the video"
        if interval[0] > chance
        else "not credibly above chance"
    )
    return (
        f"{words} Accuracy {100 * acc:.2f}% [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}] "
        f"against {100 * chance:.2f}% by guessing: {verdict}."
    )
