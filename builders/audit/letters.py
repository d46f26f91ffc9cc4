"""Answer-letter balance: can a model trained on a config learn the letter, not the video?

In: the rows of one multiple-choice config (blind.py's `read_rows`: `split`, `options`,
`answer_letter`). Out: one `LetterBalance` per side (train, test): the letter counts, the
most over-represented letter's share against its uniform share, a 95% Wilson interval,
and a flag.

A letter's uniform share is the mean over the side's rows of 1/k when the letter is one
of the row's k options, else 0: rows of 3 and of 4 options mix (the share of `D` is a
quarter of the 4-option rows). A letter is flagged when its share is LETTER_MARGIN (5
points, as the blind baselines) or more over its uniform share and the Wilson interval
at FAMILY_LEVEL over the side's letters (Bonferroni: 98.3% each for 3 letters) lies
above it. Wilson's interval over the rows, not a bootstrap over videos: the question is
whether these rows' letters could have been drawn uniformly, one per row (what
`rules.mcq_options: balanced` does, per clip), and under that hypothesis the rows are
independent; the side is the data a model is trained on, not a sample of it.

On train, the flagged letter's share is what the train side's majority letter scores on
train itself (in sample): `answer C whatever the video` is right that often on the data a
model learns from. The blind baselines score that letter on test instead, which a
class-balanced test side hides when the letter follows the class (`fixed` option order);
both are reported, for different questions.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from vlm_autodrive.builders.audit.blind import FAMILY_LEVEL, MARGIN, answer_index
from vlm_autodrive.builders.audit.intervals import wilson_corrected, z_for
from vlm_autodrive.builders.audit.records import LetterBalance
from vlm_autodrive.builders.core.answers import OPTION_LETTERS

LETTER_MARGIN = MARGIN  # flagged at the uniform share + 5 points or more (and the interval)
SIDES = ("train", "test")
# configs whose options are the rule mcq's (reasoning_mcq asks the mcq's own question)
RULE_ORDER_CONFIGS = ("mcq", "reasoning_mcq")


def letter_balance(config: str, rows: list[dict[str, Any]]) -> list[LetterBalance]:
    """One LetterBalance per side of `rows` that has scorable rows (see the module);
    rows without options or whose letter names no option are left out (blind.py counts
    them)."""
    out = []
    for side in SIDES:
        kept = [(r, i) for r in rows if r["split"] == side and (i := answer_index(r)) is not None]
        if kept:
            out.append(_side_balance(config, side, kept))
    return out


def _side_balance(config: str, side: str, kept: list[tuple[dict[str, Any], int]]) -> LetterBalance:
    n = len(kept)
    sizes = Counter(len(r["options"]) for r, _ in kept)
    width = max(sizes)
    uniform = [sum(c / k for k, c in sizes.items() if k > i) / n for i in range(width)]
    counts = Counter(i for _, i in kept)
    z = z_for(1 - (1 - FAMILY_LEVEL) / width)
    best = None
    for i in range(width):
        share = counts[i] / n
        flagged = (
            share >= uniform[i] + LETTER_MARGIN and wilson_corrected(share, n, z)[0] > uniform[i]
        )
        # the flagged letter first, then the largest excess, then the first letter
        rank = (not flagged, -(share - uniform[i]), i)
        if best is None or rank < best[0]:
            best = (rank, i, share, flagged)
    _, i, share, flagged = best
    low, high = wilson_corrected(share, n)
    return LetterBalance(
        config, side, n, OPTION_LETTERS[i], counts[i], round(share, 6), round(uniform[i], 6),
        round(low, 6), round(high, 6), flagged,
        {OPTION_LETTERS[k]: counts[k] for k in range(width)},
    )  # fmt: skip


def fix_hint(config: str, markdown: bool = False) -> str:
    """What to change so that `config`'s answer letters are balanced."""
    if config in RULE_ORDER_CONFIGS:
        return (
            "set `rules.mcq_options: balanced`" if markdown else "set rules.mcq_options: balanced"
        )
    return "shuffle each question's options"


def describe(b: LetterBalance, markdown: bool = False) -> str:
    """One line naming an imbalance: the letter, its share of the side's rows against
    its uniform share with the 95% interval, and the fix (`markdown`: code in backticks)."""
    config = f"`{b.config}`" if markdown else b.config
    return (
        f"{config} {b.side}: letter {b.letter} {b.share:.1%} of {b.rows} rows vs "
        f"{b.uniform:.1%} uniform (95% interval {b.low:.1%}-{b.high:.1%}): a model can learn "
        f"the letter, not the video; {fix_hint(b.config, markdown)}"
    )
