"""A mixture's counts as the CLI prints them and the card shows them, and its plot.

In: the report the mix stage stores (`provenance.stages.mix-<name>.report`):
per side, per component, per class: source rows, rows taken (drawn), the upsampling
factor, what the recipe asked and what was written. Out: a text table, a Markdown
table, and a PNG of the class distribution before (rows taken) and after (rows written,
copies included) upsampling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.files import atomic_path

HEAD = ("#", "config", "amount", "class", "source", "taken", "factor", "asked", "written", "share")


def _rows(side: dict[str, Any]) -> list[tuple[str, ...]]:
    """Table rows of one side: one per component and class, then the component's total."""
    total = side["written"] or 1
    out = []
    for c in side["components"]:
        first = True
        for lab, v in c["classes"].items():
            out.append(
                (
                    str(c["index"]) if first else "",
                    c["config"] if first else "",
                    c["amount"] if first else "",
                    lab,
                    f"{v['source']:,}",
                    f"{v['taken']:,}",
                    f"x{v['factor']}",
                    f"{v['asked']:,}" if v["asked"] is not None else "",
                    f"{v['written']:,}",
                    f"{100 * v['written'] / total:.1f}%",
                )
            )
            first = False
        out.append(
            (
                str(c["index"]) if first else "",
                c["config"] if first else "",
                c["amount"] if first else "",
                "all classes",
                f"{c['source']:,}",
                f"{c['taken']:,}",
                "",
                f"{c['asked']:,}",
                f"{c['written']:,}",
                f"{100 * c['written'] / total:.1f}%",
            )
        )
    return out


def _class_rows(side: dict[str, Any]) -> list[tuple[str, ...]]:
    total = side["written"] or 1
    return [
        ("", "mixture", "", lab, "", f"{side['before'][lab]:,}", "", "", f"{n:,}",
         f"{100 * n / total:.1f}%")
        for lab, n in side["after"].items()
    ]  # fmt: skip


def text_table(report: dict[str, Any]) -> str:
    """The counts as aligned text, one block per side."""
    blocks = []
    for side_name, side in report["sides"].items():
        rows = [HEAD, *_rows(side), *_class_rows(side)]
        widths = [max(len(r[i]) for r in rows) for i in range(len(HEAD))]
        numeric = {0, 4, 5, 6, 7, 8, 9}
        lines = [f"{side_name}: {side['written']:,} rows (asked vs written per component)"]
        for r in rows:
            cells = [
                r[i].rjust(widths[i]) if i in numeric else r[i].ljust(widths[i])
                for i in range(len(HEAD))
            ]
            lines.append("  " + "  ".join(cells).rstrip())
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def markdown_table(report: dict[str, Any]) -> str:
    """The counts as Markdown tables, one per side."""
    out = []
    for side_name, side in report["sides"].items():
        out.append(f"**{side_name}**: {side['written']:,} rows\n")
        out.append("| " + " | ".join(HEAD) + " |")
        out.append("|---:|---|---|---|---:|---:|---:|---:|---:|---:|")
        for r in [*_rows(side), *_class_rows(side)]:
            cells = [f"`{r[1]}`" if r[1] and r[1] != "mixture" else r[1]]
            out.append("| " + " | ".join([r[0], *cells, *r[2:]]) + " |")
        out.append("")
    return "\n".join(out)


def plot_distribution(report: dict[str, Any], path: Path, title: str = "") -> Path:
    """A PNG with, per side, rows per class before and after upsampling. ImportError
    when matplotlib is not installed. The bytes depend on the counts only (no date)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sides = list(report["sides"].items())
    fig = Figure(figsize=(7.5, 3.8 * len(sides)), dpi=100)
    FigureCanvasAgg(fig)
    for i, (side_name, side) in enumerate(sides, start=1):
        ax = fig.add_subplot(len(sides), 1, i)
        classes = list(side["after"])
        x = list(range(len(classes)))
        before = [side["before"][c] for c in classes]
        after = [side["after"][c] for c in classes]
        w = 0.38
        b1 = ax.bar([p - w / 2 for p in x], before, w, label="drawn from the configs")
        b2 = ax.bar([p + w / 2 for p in x], after, w, label="in the mixture (with copies)")
        for bars in (b1, b2):
            ax.bar_label(bars, labels=[f"{int(b.get_height()):,}" for b in bars], fontsize=8)
        ax.set_xticks(x, classes)
        ax.set_ylabel("rows")
        ax.set_title(f"{title} ({side_name}): rows per class before and after upsampling")
        ax.margins(y=0.15)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    return path
