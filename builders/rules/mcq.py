"""The `mcq` split: one event-type question per clip, one option per taxonomy class.

In: clips (rows of `chunk/clips.parquet` as dicts), each clip's side (`train`/`test`), the
taxonomy and `templates/mcq.jinja`. Out: `McqRow`s, one per clip.

Option order: `fixed` shows the classes in the taxonomy's (the paper's) order, so the
answer letter follows the label; `balanced` shows a permutation drawn per clip from a
hash of (seed, clip id), uniform over all orders, so each letter is the answer about
equally often and a model cannot learn a letter prior. Either way the order of a clip
is the same in every rebuild.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from vlm_autodrive.builders.core.answers import option_letters
from vlm_autodrive.builders.core.jinja_env import LoadedTemplate, load_template
from vlm_autodrive.builders.core.ranking import seeded_permutation
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.dataset.rows import COMMON_FIELDS, SplitRow, content_hash, row_id
from vlm_autodrive.builders.rules.captions import render_or_explain

CONFIG = "mcq"
GENERATOR = "rule:mcq"
TEMPLATE = "mcq.jinja"
INPUTS = ("options", "answer")
BLOCKS = ("question", "answer")


@dataclass(slots=True)
class McqRow(SplitRow):
    """A row of the `mcq` config.

    `question` is the user turn (with the lettered options), `answer` the assistant
    turn; `options` are the class names in the order shown (A, B, ...) and
    `answer_letter` the correct one's letter, for scoring without parsing text.
    """

    question: str
    options: list[str]
    answer_letter: str
    answer: str


MCQ_SCHEMA = pa.schema(
    [
        *COMMON_FIELDS,
        ("question", pa.string()),
        ("options", pa.list_(pa.string())),
        ("answer_letter", pa.string()),
        ("answer", pa.string()),
    ]
)


def load_mcq_template(taxonomy: Taxonomy, folders: Sequence[str | Path]) -> LoadedTemplate:
    """Load and check templates/mcq.jinja on one sample per class as the answer."""
    options = _options(taxonomy, list(range(len(taxonomy.classes))))
    samples = [{"options": options, "answer": o} for o in options]
    return load_template(TEMPLATE, folders, INPUTS, samples=samples, blocks=BLOCKS)


def option_order(policy: str, n: int, seed: int, clip_id: str) -> list[int]:
    """Indices of the taxonomy's classes in the order shown for one clip."""
    if policy == "fixed":
        return list(range(n))
    if policy != "balanced":
        raise ValueError(f"unknown option policy {policy!r}; use fixed or balanced")
    return seeded_permutation(n, seed, clip_id)


def _options(taxonomy: Taxonomy, order: list[int]) -> list[dict[str, str]]:
    letters = option_letters(len(order))
    return [
        {
            "letter": letters[pos],
            "name": taxonomy.classes[i].name,
            "text": taxonomy.classes[i].mcq_option,
        }
        for pos, i in enumerate(order)
    ]


def build_mcq(
    clips: Iterable[Mapping[str, Any]],
    sides: Mapping[str, str],
    taxonomy: Taxonomy,
    template: LoadedTemplate,
    policy: str,
    seed: int,
) -> tuple[list[McqRow], dict[str, dict[str, int]]]:
    """One McqRow per clip that has a side in `sides` (clips held out of both are skipped).

    Returns the rows and the answer-letter counts per side: `{"train": {"A": n, ...}}`.
    """
    index = {c.name: i for i, c in enumerate(taxonomy.classes)}
    n = len(index)
    # Only n! orders x n answers exist: render each (order, answer) once.
    memo: dict[tuple[tuple[int, ...], int], tuple[list[dict[str, str]], str, str]] = {}
    letters: dict[str, Counter[str]] = {}
    rows = []
    for clip in clips:
        side = sides.get(clip["clip_id"])
        if side is None:
            continue
        order = tuple(option_order(policy, n, seed, clip["clip_id"]))
        answer_pos = order.index(index[clip["label"]])
        key = (order, answer_pos)
        if key not in memo:
            opts = _options(taxonomy, list(order))
            ctx = {"options": opts, "answer": opts[answer_pos]}
            what = f"clip {clip['clip_id']}"
            memo[key] = (
                opts,
                render_or_explain(template, ctx, what, "question"),
                render_or_explain(template, ctx, what, "answer"),
            )
        opts, question, answer = memo[key]
        names = [o["name"] for o in opts]
        letter = opts[answer_pos]["letter"]
        letters.setdefault(side, Counter())[letter] += 1
        rows.append(
            McqRow(
                id=row_id(CONFIG, clip["clip_id"]),
                clip_id=clip["clip_id"],
                video_id=clip["video_id"],
                label=clip["label"],
                split=side,
                generator=GENERATOR,
                template=template.ref,
                content_hash=content_hash(question, names, letter, answer, clip["path"]),
                video=clip["path"],
                question=question,
                options=names,
                answer_letter=letter,
                answer=answer,
            )
        )
    counts = {s: dict(sorted(c.items())) for s, c in sorted(letters.items())}
    return rows, counts
