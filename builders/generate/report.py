"""Per-split counts of the model splits stage and the table printed at the end."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field


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
    # dry run: output tokens the requests to send would make (n samples each), and how
    # that was estimated; the GPU-hours of the sends with a throughput in the recipe
    output_tokens_est: int = 0
    output_tokens_from: str = ""
    prompt_tokens_from: str = ""
    gpu_hours_est: float | None = None
    rows_changed: int = 0  # dry run: rows the cached responses change (added/removed/other)
    # dry run: clips whose request is to send (their rows are not known before)
    pending: set[str] = field(default_factory=set, repr=False)
    # dry run: requests the run may send beyond `to_send`, made from outputs not made
    # yet (reasoning_revised: the revisions of samples still to be drawn), and why
    may_send: int = 0
    may_send_why: str = ""
    by_class: dict[str, list[int]] = field(default_factory=dict)  # label -> [samples, kept]
    checked: int = 0  # reasoning_revised: revisions the independent check was asked about
    check_template: str = ""
    # `target:` per class: target, budget, requests (spent, the first pass's included),
    # rows (train rows kept), stopped (reached, budget, no train clips; dry run: to send)
    # and to_send (dry run: at most this many more requests); see target.py
    targets: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The report as JSON stores it (the dry run's `pending` clips left out)."""
        return {k: v for k, v in asdict(self).items() if k != "pending"}

    @property
    def yield_(self) -> float:
        return self.kept / self.samples if self.samples else 0.0


def format_reports(reports: Iterable[SplitReport], dry_run: bool = False) -> str:
    """The summary table printed at the end (or by --dry-run)."""
    if dry_run:
        return _format_dry_run(list(reports))
    head = (
        f"  {'config':<18}{'clips':>6}{'requests':>9}{'cached':>7}{'sent':>6}{'samples':>8}"
        f"{'kept':>6}{'rows':>6}{'yield':>7}  failures"
    )
    lines = [head]
    for r in reports:
        fails = ", ".join(f"{k} {v}" for k, v in r.failed.items()) or "none"
        lines.append(
            f"  {r.name:<18}{r.clips:>6}{r.requests:>9}{r.cached:>7}{r.sent:>6}"
            f"{r.samples:>8}{r.kept:>6}{r.rows:>6}{r.yield_:>7.0%}  {fails}"
        )
    return "\n".join(lines + revision_yield(reports) + target_lines(reports))


def target_lines(reports: Iterable[SplitReport]) -> list[str]:
    """Per split with a `target`, per class: train rows kept of the target and requests
    spent of the budget, and whether it was reached, stopped at its budget short of it,
    or (dry run) has at most so many requests still to send."""
    lines = []
    for r in reports:
        if not r.targets:
            continue
        lines.append(f"  {r.name} to a target (train rows / target, requests / budget):")
        for label, t in r.targets.items():
            short = t["target"] - t["rows"]
            why = {
                "reached": "reached",
                "budget": f"stopped at its budget, {short} short",
                "no train clips": f"no train clips to ask, {short} short",
                "to send": f"at most {t['to_send']} more requests to send",
            }[t["stopped"]]
            lines.append(
                f"    {label:<16}{t['rows']:>6}/{t['target']:<6}{t['requests']:>7}/{t['budget']:<7}"
                f"  {why}"
            )
    return lines


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


def _format_dry_run(reports: list[SplitReport]) -> str:
    """The dry run's table: per split what is cached, what would be sent and its cost."""
    head = (
        f"  {'config':<14}{'clips':>6}{'requests':>9}{'cached':>8}{'to send':>9}"
        f"{'prompt tok':>12}{'output tok':>12}{'rows chg':>9}{'GPU-h':>8}"
    )
    lines = [head]
    for r in reports:
        gpu = "-" if r.gpu_hours_est is None else f"{r.gpu_hours_est:.2f}"
        lines.append(
            f"  {r.name:<14}{r.clips:>6}{r.requests:>9}{r.cached:>8}{r.to_send:>9}"
            f"{r.prompt_tokens_est:>12}{r.output_tokens_est:>12}{r.rows_changed:>9}{gpu:>8}"
        )
    sends = sum(r.to_send for r in reports)
    gpus = [r.gpu_hours_est for r in reports if r.to_send and r.gpu_hours_est is not None]
    total = f"{sum(gpus):.2f} GPU-hours" if gpus else "no throughput in the recipe: no GPU-hours"
    unknown = [r for r in reports if r.may_send]
    lines += [f"  {r.name}: up to {r.may_send} more requests, {r.may_send_why}" for r in unknown]
    more = sum(r.may_send for r in unknown)
    bound = f" (up to {sends + more} with the {more} above)" if more else ""
    lines.append(f"  total: {sends} requests to send{bound}, {total}")
    lines += [
        f"  {r.name} tokens, {r.prompt_tokens_from}; {r.output_tokens_from}"
        for r in reports
        if r.to_send
    ]
    lines += target_lines(reports)
    lines.append(
        "  rows chg: rows that the cached responses change (added, removed, other content); "
        "the rows of the requests to send are known once they are answered"
    )
    return "\n".join(lines)
