"""Per-split counts of the model splits stage and the table printed at the end."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class SplitReport:
    """Counts of one split; `samples == kept + failed` (all kinds) always holds."""

    name: str
    clips: int = 0
    requests: int = 0
    cached: int = 0
    to_send: int = 0
    sent: int = 0
    prompt_tokens_est: int = 0
    samples: int = 0
    kept: int = 0
    rows: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    completion_tokens: int = 0
    by_class: dict[str, list[int]] = field(default_factory=dict)  # label -> [samples, kept]
    checked: int = 0  # reasoning_revised: revisions the independent check was asked about
    check_template: str = ""

    @property
    def yield_(self) -> float:
        return self.kept / self.samples if self.samples else 0.0


def format_reports(reports: Iterable[SplitReport], dry_run: bool = False) -> str:
    """The summary table printed at the end (or by --dry-run)."""
    if dry_run:
        head = (
            f"  {'split':<18}{'rows':>7}{'requests':>10}{'cached':>8}"
            f"{'to send':>9}{'~prompt tok':>13}"
        )
        lines = [head]
        for r in reports:
            lines.append(
                f"  {r.name:<18}{r.clips:>7}{r.requests:>10}{r.cached:>8}"
                f"{r.to_send:>9}{r.prompt_tokens_est:>13}"
            )
        return "\n".join(lines)
    head = (
        f"  {'split':<18}{'clips':>6}{'requests':>9}{'cached':>7}{'sent':>6}{'samples':>8}"
        f"{'kept':>6}{'rows':>6}{'yield':>7}  failures"
    )
    lines = [head]
    for r in reports:
        fails = ", ".join(f"{k} {v}" for k, v in r.failed.items()) or "none"
        lines.append(
            f"  {r.name:<18}{r.clips:>6}{r.requests:>9}{r.cached:>7}{r.sent:>6}"
            f"{r.samples:>8}{r.kept:>6}{r.rows:>6}{r.yield_:>7.0%}  {fails}"
        )
    return "\n".join(lines + revision_yield(reports))


def revision_yield(reports: Iterable[SplitReport]) -> list[str]:
    """reasoning_mcq's yield per class before and after reasoning_revised: valid traces
    over the samples drawn, without and with the revised ones."""
    by_name = {r.name: r for r in reports}
    first, revised = by_name.get("reasoning_mcq"), by_name.get("reasoning_revised")
    if first is None or revised is None:
        return []
    lines = ["  reasoning_mcq yield per class, before -> after revision (valid traces / samples):"]
    total = [0, 0, 0]
    for label, (n, kept) in first.by_class.items():
        more = revised.by_class.get(label, [0, 0])[1]
        total = [total[0] + n, total[1] + kept, total[2] + more]
        lines.append(f"    {label:<16}{_ratio(kept, n)} -> {_ratio(kept + more, n)}")
    lines.append(
        f"    {'all':<16}{_ratio(total[1], total[0])} -> {_ratio(total[1] + total[2], total[0])}"
    )
    if revised.check_template:  # the check is on
        lines.append(
            f"  reasoning_revised: {revised.checked} revisions sent to the independent check, "
            f"{revised.kept} confirmed"
        )
    return lines


def _ratio(k: int, n: int) -> str:
    return f"{k:>3}/{n:<3} {k / n if n else 0:>4.0%}"
