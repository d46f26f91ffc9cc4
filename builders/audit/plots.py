"""The audit's plots (PNG, matplotlib's Agg backend, no timestamp or version in the file:
the same report gives the same bytes).

In: an AuditReport and the folder. Out: `blind_baselines.png` (each baseline's accuracy
and 95% interval against chance, per config), `answer_letters.png` (answer-letter shares
per config and side), `rows_per_class.png` (rows per config and class, train and test).
Without matplotlib (an optional dependency) no plot is written and the report says so.
"""

from __future__ import annotations

from pathlib import Path

from vlm_autodrive.builders.audit.report import AuditReport

META = {"Software": None}  # no version string: same report, same bytes


def write_plots(report: AuditReport, out: Path) -> list[Path]:
    """Write the plots the report has data for; returns their paths."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        report.notes.append("matplotlib is not installed: no plots (pip install matplotlib)")
        return []
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with plt.rc_context({"figure.dpi": 100, "font.size": 8}):
        for name, draw in (
            ("blind_baselines.png", _baselines),
            ("answer_letters.png", _letters),
            ("rows_per_class.png", _rows),
        ):
            fig = draw(report, plt)
            if fig is None:
                continue
            path = out / name
            fig.savefig(path, format="png", metadata=META)
            plt.close(fig)
            written.append(path)
    return written


def _baselines(report: AuditReport, plt):
    scores = [b for b in report.baselines if b.label == "all"]
    if not scores:
        return None
    configs = sorted({b.config for b in scores})
    names = sorted({b.baseline for b in scores})
    fig, ax = plt.subplots(figsize=(max(4, 1.4 * len(configs)), 3.2))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        for c, config in enumerate(configs):
            b = next((b for b in scores if b.config == config and b.baseline == name), None)
            if b is None:
                continue
            x = c + (k - (len(names) - 1) / 2) * width
            err = [[b.accuracy - b.low], [b.high - b.accuracy]]
            ax.bar(x, b.accuracy, width, color=f"C{k}", label=name if c == 0 else None)
            ax.errorbar(x, b.accuracy, yerr=err, color="black", capsize=2, lw=0.8)
            ax.hlines(b.chance, x - width / 2, x + width / 2, colors="red", lw=1.2)
    ax.set_xticks(range(len(configs)), configs, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy without the video (red: chance)")
    ax.legend(fontsize=6, ncols=2)
    fig.tight_layout()
    return fig


def _letters(report: AuditReport, plt):
    stats = [s for s in report.config_stats if s.label == "all" and s.side != "all" and s.letters]
    if not stats:
        return None
    letters = sorted({k for s in stats for k in s.letters})
    names = [f"{s.config}\n{s.side}" for s in stats]
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(stats)), 3.2))
    bottom = [0.0] * len(stats)
    for k, letter in enumerate(letters):
        share = [s.letters.get(letter, 0) / max(1, sum(s.letters.values())) for s in stats]
        ax.bar(range(len(stats)), share, bottom=bottom, color=f"C{k}", label=letter)
        bottom = [b + v for b, v in zip(bottom, share, strict=True)]
    ax.set_xticks(range(len(stats)), names, rotation=30, fontsize=6)
    ax.set_ylabel("share of answer letters")
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def _rows(report: AuditReport, plt):
    stats = [s for s in report.config_stats if s.label != "all" and s.side in ("train", "test")]
    if not stats:
        return None
    groups = sorted({(s.config, s.side) for s in stats})
    labels = sorted({s.label for s in stats})
    fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(groups)), 3.2))
    width = 0.8 / len(labels)
    for k, label in enumerate(labels):
        rows = {(s.config, s.side): s.rows for s in stats if s.label == label}
        xs = [g + (k - (len(labels) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [rows.get(g, 0) for g in groups], width, color=f"C{k}", label=label)
    ax.set_xticks(range(len(groups)), [f"{c}\n{s}" for c, s in groups], rotation=30, fontsize=6)
    ax.set_yscale("log")
    ax.set_ylabel("rows (log)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig
