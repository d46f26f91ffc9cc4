"""Generation to a target: more rounds of requests for the classes short of their rows.

A model split's `target: {CLASS: N}` asks for N valid train rows of each class, within
`budget: {CLASS: B}` requests (the first request of each of the class's train clips
included). In: the split's first pass, as the stage made it (every clip with the key of
its request, the requests, the rows and failures parsed), and two functions of the stage:
`fetch` (requests -> responses, from the cache or sent; in a dry run the cache only) and
`parse` (responses -> rows and failures, counted as every sample is). Out: the rows and
failures of the extra rounds added to the first pass's, the split's report updated
(requests, samples, `targets`: per class what was asked, spent and kept), and, in a dry
run, the requests it would send at worst.

The candidates of a class are its train clips in a seeded order, again and again: the
k-th time a clip is asked again is its round k, a request of its own (the first pass's
request with `round: k` in its key and a seed drawn from the clip and the round: not
stepped, so that it never meets the seed of a `--retry-failed` attempt, which steps by
`n`). The candidates form one fixed sequence, and every step takes the next part of it,
so a rerun (or a run with a larger budget) finds the same requests in the cache, and the
same recipe and responses give the same rows. A round's samples are numbered on from the
first pass (round k: k*n .. k*n+n-1), so row and failure ids stay unique.

Each step asks, for every class still short with budget left, as many candidates as its
yield so far says it needs (with a margin, MARGIN), at most what is left of its budget;
a class with no row yet gets a full round. It stops when every class has N rows or has
spent its budget. Rows beyond N from the last step are kept (valid and paid for). The
dry run walks the same steps on the cached responses; at the first step of a class
that would send, it counts every candidate left in the budget (the worst case: every
round up to the budget needed) and stops that class there.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from vlm_autodrive.builders.core.errors import InputError
from vlm_autodrive.builders.core.ranking import seeded_rank
from vlm_autodrive.builders.core.stage import Counts
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.generate.backends.base import GenerationRequest, GenerationResponse
from vlm_autodrive.builders.generate.config import GenerateConfig, SplitGenConfig
from vlm_autodrive.builders.generate.report import SplitReport
from vlm_autodrive.builders.generate.requests import SEED_RANGE
from vlm_autodrive.builders.generate.tasks.base import ClipInput

MARGIN = 1.2  # a step asks for 20% more than the yield so far says, to finish in one step
REACHED, BUDGET, NO_CLIPS, OPEN = "reached", "budget", "no train clips", "to send"


class Fetched(NamedTuple):
    """What `fetch` gives for a dict of requests (by an id of the caller's)."""

    key_of: dict[str, str]  # id -> the cache key the request is stored under
    by_key: dict[str, GenerationResponse]  # cache key -> response (cached or received)
    missed: set[str]  # ids that were not in the cache (sent, or in a dry run to send)
    to_send: list[GenerationRequest]  # those requests, keyed


Fetch = Callable[[dict[str, GenerationRequest]], Fetched]
# (plan [(clip, id)], key_of, by_key, {id: first sample}) -> rows, failures, their counts
Parse = Callable[..., tuple[list[Any], list[Any], SplitReport]]


def check_target_classes(gen: GenerateConfig | None, taxonomy: Taxonomy, source: Any) -> None:
    """Every class named in a split's `target` is one of the taxonomy's; InputError naming
    the key (`generate.configs.S.target.C`) otherwise."""
    for name, sgen in (gen.configs if gen else {}).items():
        for label in sgen.target:
            if label not in taxonomy.names:
                raise InputError(
                    source,
                    f"not a class of the taxonomy ({', '.join(taxonomy.names)})",
                    f"generate.configs.{name}.target.{label}",
                )


@dataclass
class _Class:
    """One class's progress towards its target."""

    label: str
    wanted: int
    budget: int
    order: list[tuple[ClipInput, str]]  # its train clips (and first-pass key), seeded order
    spent: int  # requests so far, the first pass's included
    rows: int  # its train rows so far
    asked: int = 0  # candidates of the sequence taken so far
    stopped: str = ""
    to_send: int = 0  # dry run: at most this many more requests

    def candidate(self, i: int) -> tuple[ClipInput, str, int]:
        """The i-th candidate: a clip, its first-pass key and its round (1, 2, ...)."""
        clip, base = self.order[i % len(self.order)]
        return clip, base, i // len(self.order) + 1

    def step_size(self) -> int:
        """How many candidates the next step asks; 0 once the class is done (`stopped`
        says why)."""
        left = self.budget - self.spent
        if not self.stopped and self.rows >= self.wanted:
            self.stopped = REACHED
        elif not self.stopped and not self.order:
            self.stopped = NO_CLIPS
        elif not self.stopped and left <= 0:
            self.stopped = BUDGET
        if self.stopped:
            return 0
        if not self.rows:
            return min(left, len(self.order))
        per_request = self.rows / self.spent
        return min(left, math.ceil((self.wanted - self.rows) / per_request * MARGIN))


def extra_request(req: GenerationRequest, sgen: SplitGenConfig, split: str, clip_id: str, k: int):
    """Round k of a clip: its first request with its own seed and `round: k` in its key."""
    seed = seeded_rank(sgen.seed, "request", split, clip_id, "round", k) % SEED_RANGE
    return replace(
        req,
        sampling=replace(req.sampling, seed=seed),
        key_extra={**(req.key_extra or {}), "round": k},
    )


def reach_targets(
    split: str,
    sgen: SplitGenConfig,
    plan: list[tuple[ClipInput, str]],
    requests: dict[str, GenerationRequest],
    report: SplitReport,
    rows: list[Any],
    fails: list[Any],
    fetch: Fetch,
    parse: Parse,
    dry_run: bool,
    say: Callable[[str], None] = lambda line: None,
) -> list[GenerationRequest]:
    """Run the extra rounds of `split` (see the module); `rows` and `fails` are extended
    in place and `report` updated. Returns, in a dry run, the requests it would send at
    worst (for the cost estimate); else []."""
    classes = _classes(sgen, plan, rows, split)
    worst: list[GenerationRequest] = []
    step_no = 0
    while True:
        items: dict[str, tuple[_Class, ClipInput, int, GenerationRequest]] = {}
        for c in classes:
            for i in range(c.asked, c.asked + c.step_size()):
                clip, base, k = c.candidate(i)
                req = extra_request(requests[base], sgen, split, clip.clip_id, k)
                items[f"{clip.clip_id}\x1f{k}"] = (c, clip, k, req)
        if not items:
            break
        step_no += 1
        got = fetch({i: it[3] for i, it in items.items()})
        if dry_run:  # a class that would send: its worst case, and no further steps
            for c in {it[0].label: it[0] for i, it in items.items() if i in got.missed}.values():
                worst += _worst_case(c, sgen, split, requests, fetch, report)
            items = {i: it for i, it in items.items() if not it[0].stopped}
        if not items:
            continue
        asked = Counter(it[0].label for it in items.values())
        if not dry_run:
            say(
                f"{split}: target step {step_no}: "
                + ", ".join(
                    f"{c.label} {c.rows}/{c.wanted} rows, {asked[c.label]} more requests"
                    for c in classes
                    if asked[c.label]
                )
                + f" ({len(got.missed)} to send)"
            )
        report.requests += len(items)
        report.cached += len(items) - len(got.missed & items.keys())
        report.to_send += len(got.missed & items.keys())
        entries = [(it[1], i) for i, it in items.items()]
        offsets = {i: it[2] * sgen.n for i, it in items.items()}
        new_rows, new_fails, counts = parse(entries, got.key_of, got.by_key, offsets)
        _merge(report, counts)
        rows.extend(new_rows)
        fails.extend(new_fails)
        for c in classes:
            c.asked += asked[c.label]
            c.spent += asked[c.label]
            c.rows += sum(1 for r in new_rows if r.label == c.label and r.split == "train")
    report.rows = len(rows)
    report.failed = dict(sorted(Counter(f.kind for f in fails).items()))
    report.targets = {
        c.label: {
            "target": c.wanted,
            "budget": c.budget,
            "requests": c.spent,
            "rows": c.rows,
            "stopped": c.stopped,
            "to_send": c.to_send,
        }
        for c in classes
    }
    if not dry_run:
        Counts(f"{split} samples", report.samples, report.kept, failures=len(fails)).check()
    rows.sort(key=lambda r: r.id)
    return worst


def _classes(sgen, plan, rows, split) -> list[_Class]:
    """Each target class with its train clips in a seeded order and its first pass."""
    out = []
    for label, wanted in sgen.target.items():
        members = {c.clip_id: (c, b) for c, b in plan if c.label == label and c.split == "train"}
        order = sorted(
            members.values(),
            key=lambda cb: seeded_rank(sgen.seed, "target", split, cb[0].clip_id),
        )
        have = sum(1 for r in rows if r.label == label and r.split == "train")
        out.append(_Class(label, wanted, sgen.budget[label], order, len(order), have))
    return out


def _worst_case(c: _Class, sgen, split, requests, fetch: Fetch, report: SplitReport):
    """Dry run: every candidate of `c` left in its budget, counted as cached or to send;
    its clips are `pending` (their rows are not known before the run)."""
    rest = {}
    for i in range(c.asked, c.asked + max(0, c.budget - c.spent)):
        clip, base, k = c.candidate(i)
        rest[f"{clip.clip_id}\x1f{k}"] = extra_request(requests[base], sgen, split, clip.clip_id, k)
        report.pending.add(clip.clip_id)
    got = fetch(rest)
    report.requests += len(rest)
    report.cached += len(rest) - len(got.missed)
    report.to_send += len(got.missed)
    c.to_send, c.stopped = len(got.missed), OPEN
    return got.to_send


def _merge(report: SplitReport, counts: SplitReport) -> None:
    """Add the samples of a step to the split's report."""
    report.samples += counts.samples
    report.kept += counts.kept
    for label, (n, kept) in counts.by_class.items():
        before = report.by_class.get(label, [0, 0])
        report.by_class[label] = [before[0] + n, before[1] + kept]
    report.by_class = dict(sorted(report.by_class.items()))
