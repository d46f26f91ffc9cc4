"""The audit's report: its tables, and the texts made from them.

`AuditReport` holds one list per table (records.py) and what the audit was run with.
Out: `to_dict()` (report.json), `markdown()` (report.md), `summary()` (the lines the
command prints), `card_markdown()` (a short section for the dataset card) and
`html_summary()` (a dict of aggregates for the HTML page).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.audit.letters import LETTER_MARGIN, describe
from vlm_autodrive.builders.audit.records import (
    BaselineScore,
    ConfigStats,
    DuplicateGroup,
    LeakFlag,
    LetterBalance,
    QuestionDuplicates,
    VideoStats,
    YieldRow,
)

SHOW_IDS = 10  # leaking row ids shown in the markdown report per flag (report.json has all)
REPORT = "audit/report.json"
_MARGIN_POINTS = f"{LETTER_MARGIN * 100:.0f} points"  # relative to the build folder


def load_report(build_dir: Path) -> AuditReport | None:
    """The build's last audit (`BUILD/audit/report.json`), or None when it has none or
    the file cannot be read."""
    try:
        return AuditReport.from_dict(json.loads((Path(build_dir) / REPORT).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def card_section(build_dir: Path) -> str:
    """The dataset card's audit section (markdown), "" when the build has no audit:
    builders/dataset/card.py's render_card adds it."""
    report = load_report(build_dir)
    return report.card_markdown() if report else ""


def page_summary(build_dir: Path) -> dict[str, Any] | None:
    """The aggregates for an HTML page (AuditReport.html_summary), None without an audit."""
    report = load_report(build_dir)
    return report.html_summary() if report else None


@dataclass
class AuditReport:
    """Everything `autodrive audit BUILD` found (see builders/audit/stage.py)."""

    build: str
    baselines: list[BaselineScore] = field(default_factory=list)
    leaks: list[LeakFlag] = field(default_factory=list)
    # answer letters per multiple-choice config and side (letters.py)
    letter_balance: list[LetterBalance] = field(default_factory=list)
    duplicates: list[DuplicateGroup] = field(default_factory=list)
    question_duplicates: list[QuestionDuplicates] = field(default_factory=list)
    config_stats: list[ConfigStats] = field(default_factory=list)
    yields: list[YieldRow] = field(default_factory=list)
    videos: list[VideoStats] = field(default_factory=list)
    # how it was measured: tokenizer, threshold, files hashed, rows not scored, plots
    settings: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    # files this run read (hashed) rather than found in the hash cache: not in report.json,
    # which must be the same for the same build whatever the cache held
    files_read: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "files_read"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AuditReport:
        """The report report.json holds (what `to_dict` wrote)."""
        tables = {
            "baselines": BaselineScore, "leaks": LeakFlag, "letter_balance": LetterBalance,
            "duplicates": DuplicateGroup,
            "question_duplicates": QuestionDuplicates, "config_stats": ConfigStats,
            "yields": YieldRow, "videos": VideoStats,
        }  # fmt: skip
        given = {k: [t(**row) for row in d.get(k, [])] for k, t in tables.items()}
        rest = {k: v for k, v in d.items() if k not in tables}
        return cls(**rest, **given)

    @property
    def flagged_configs(self) -> list[str]:
        return sorted({f.config for f in self.leaks})

    @property
    def letter_flags(self) -> list[LetterBalance]:
        """The config sides whose answer letters a model can learn (letters.py)."""
        return [b for b in self.letter_balance if b.flagged]

    @property
    def crossing_groups(self) -> list[DuplicateGroup]:
        return [g for g in self.duplicates if g.crosses_sides]

    def summary(self) -> str:
        """A few lines for the terminal."""
        mc = sorted({b.config for b in self.baselines})
        lines = [f"audit of {self.build}: {len(mc)} multiple-choice configs"]
        for f in self.leaks:
            lines.append(
                f"  LEAK {f.config}: {f.baseline} {f.accuracy:.1%} vs chance {f.chance:.1%} "
                f"({f.leaking_rows} of {f.total_rows} rows answerable without the video)"
            )
        if not self.leaks and mc:
            lines.append("  no config is answerable above chance + 5 points without the video")
        lines += [f"  LETTERS {describe(b)}" for b in self.letter_flags]
        if self.letter_balance and not self.letter_flags:
            lines.append(
                f"  answer letters: no letter {_MARGIN_POINTS} or more over uniform on any "
                "config and side"
            )
        kinds: dict[str, int] = {}
        for g in self.duplicates:
            kinds[g.kind] = kinds.get(g.kind, 0) + 1
        dup = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"
        lines.append(
            f"  duplicate groups: {dup}; on both train and test: {len(self.crossing_groups)}"
        )
        qd = sum(q.duplicate_rows for q in self.question_duplicates)
        lines.append(f"  repeated questions within a config and side: {qd} rows")
        lines.append(f"  tokens: {self.settings.get('tokens', '')}")
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"  report: {self.settings.get('out', 'BUILD/audit')}/report.md")
        return "\n".join(lines)

    def card_markdown(self) -> str:
        """A short section for the dataset card: leaks, duplicates, per-config rows."""
        out = ["## Audit", ""]
        if self.leaks:
            out.append("Answerable without the video (blind baseline above chance + 5 points):")
            out += [
                f"- `{f.config}`: {f.baseline} {f.accuracy:.1%} vs chance {f.chance:.1%}, "
                f"{f.leaking_rows} rows"
                for f in self.leaks
            ]
        else:
            out.append("No multiple-choice config is answerable above chance without the video.")
        out.append("")
        if self.letter_flags:
            out.append(
                f"Answer letters not balanced (a letter {_MARGIN_POINTS} or more over its "
                "share under a uniform draw, its 95% interval above it):"
            )
            out += [f"- {describe(b, markdown=True)}" for b in self.letter_flags]
        elif self.letter_balance:
            out.append(
                f"No answer letter is {_MARGIN_POINTS} or more over its share under a uniform "
                "draw, on any config and side."
            )
        out.append("")
        out.append(
            f"Duplicate groups: {len(self.duplicates)} "
            f"({len(self.crossing_groups)} on both train and test)."
        )
        out += [
            "",
            "| config | side | rows | answer tokens (mean) | letters |",
            "|---|---|---|---|---|",
        ]
        for s in self.config_stats:
            if s.label == "all" and s.side != "all":
                letters = " ".join(f"{k}:{v}" for k, v in s.letters.items())
                out.append(
                    f"| {s.config} | {s.side} | {s.rows} | {s.answer_tokens_mean:.1f} | {letters} |"
                )
        out += ["", "The full report: `audit/report.md` (`autodrive audit BUILD`)."]
        return "\n".join(out) + "\n"

    def html_summary(self) -> dict[str, Any]:
        """Aggregates for the HTML page: flagged leaks, duplicate counts, rows per config,
        side and class, hours of video, and the plots' paths (relative to the build)."""
        return {
            "flagged": [{k: v for k, v in asdict(f).items() if k != "ids"} for f in self.leaks],
            "letter_imbalance": [asdict(b) for b in self.letter_flags],
            "duplicate_groups": len(self.duplicates),
            "duplicate_groups_across_sides": len(self.crossing_groups),
            "rows": [
                {"config": s.config, "side": s.side, "label": s.label, "rows": s.rows}
                for s in self.config_stats
                if s.side != "all"
            ],
            "videos": [asdict(v) for v in self.videos],
            "plots": list(self.plots),
        }

    def markdown(self) -> str:
        """report.md: every table, the leaking rows' first ids."""
        out = [f"# Audit of {self.build}", ""]
        out += [f"- {k}: {v}" for k, v in self.settings.items()]
        out += [f"- note: {n}" for n in self.notes]
        out += ["", "## Blind baselines (no video)", ""]
        out += _table(
            ["config", "baseline", "class", "on", "rows", "accuracy", "chance", "95% interval",
             "flag"],
            [
                [b.config, b.baseline, b.label, b.scored_on, b.rows, f"{b.accuracy:.1%}",
                 f"{b.chance:.1%}", f"{b.low:.1%}-{b.high:.1%}", "LEAK" if b.flagged else ""]
                for b in self.baselines
            ],
        )  # fmt: skip
        for f in self.leaks:
            ids = ", ".join(f.ids[:SHOW_IDS]) + (" ..." if len(f.ids) > SHOW_IDS else "")
            out += [
                "",
                f"`{f.config}` / {f.baseline}: {f.leaking_rows} of {f.total_rows} rows: {ids}",
            ]
        out += ["", "## Answer letters", ""]
        out += _table(
            ["config", "side", "rows", "letters", "most over uniform", "share", "uniform",
             "95% interval", "flag"],
            [[b.config, b.side, b.rows, _kv(b.letters), b.letter, f"{b.share:.1%}",
              f"{b.uniform:.1%}", f"{b.low:.1%}-{b.high:.1%}", "IMBALANCED" if b.flagged else ""]
             for b in self.letter_balance],
        )  # fmt: skip
        for b in self.letter_flags:
            out += ["", describe(b)]
        out += ["", "## Duplicates", ""]
        out += _table(
            ["kind", "members", "sides", "both sides", "distance"],
            [[g.kind, " ".join(g.members), " ".join(g.sides), g.crosses_sides, g.distance]
             for g in self.duplicates],
        )  # fmt: skip
        out += ["", f"files: {self.counts.get('files', {})}", ""]
        out += _table(
            ["config", "side", "rows", "distinct questions", "repeated rows", "most repeated"],
            [[q.config, q.side, q.rows, q.distinct, q.duplicate_rows, q.top_count]
             for q in self.question_duplicates],
        )  # fmt: skip
        out += ["", "## Generation yield", ""]
        out += _table(
            ["split", "class", "samples", "kept", "yield", "failures", "top reasons"],
            [[y.config, y.label, y.samples, y.kept, f"{y.yield_:.0%}", _kv(y.failures_by_kind),
              _kv(y.top_reasons)] for y in self.yields],
        )  # fmt: skip
        out += ["", "## Rows, tokens, letters, distinct n-grams", ""]
        out += _table(
            ["config", "side", "class", "rows", "question tok", "answer tok", "p95", "letters",
             "distinct-1", "distinct-2"],
            [[s.config, s.side, s.label, s.rows, s.question_tokens_mean, s.answer_tokens_mean,
              s.answer_tokens_p95, _kv(s.letters), s.distinct_1, s.distinct_2]
             for s in self.config_stats],
        )  # fmt: skip
        out += ["", "## Videos", ""]
        out += _table(
            ["side", "class", "videos", "clips", "source hours", "clip hours", "clips/source",
             "max"],
            [[v.side, v.label, v.videos, v.clips, v.source_hours, v.clip_hours,
              v.clips_per_source, v.max_clips_per_source] for v in self.videos],
        )  # fmt: skip
        out += [""] + [f"![{p}]({p.split('/')[-1]})" for p in self.plots]
        return "\n".join(out) + "\n"


def _kv(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["(none)"]

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return out
