"""The `reasoning_revised` split: wrong reasoning traces of `reasoning_mcq`, revised.

In: every `reasoning_mcq` sample of this run that failed as `filtered` for its wrong
answer (a well-formed trace; identical traces of one clip once; a trace filtered with the
right answer, for citing its text, is not revised: the reviser is told the answer is
wrong), with the clip's
detailed and VLM captions, its MCQ and the ground-truth answer. The reviser writes a
corrected trace that reasons from the evidence to the answer. Kept only when (1) it
ends in the ground-truth answer; (2) it does not cite being told the answer (a phrase
of `prompts/checks/revision_leaks.txt`, such as "ground truth"), nor the text it was
written from (`prompts/checks/text_leaks.txt`, "the description"); (3) with `check:` in
the split's config, an independent model asked the question with the revised trace and
no answer concludes the ground truth (`RevisionCheck`, run by the stage on the kept
rows; `check: null` turns it off). Rows carry `revised: true` and `revises`, the id of
the failure they revise.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from vlm_autodrive.builders.core.answers import option_letters
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.dataset.rows import SplitRow, content_hash, row_id
from vlm_autodrive.builders.generate.backends.base import split_reasoning
from vlm_autodrive.builders.generate.degenerate import check_content
from vlm_autodrive.builders.generate.parsing import ParseError, extract_answer_letter, require
from vlm_autodrive.builders.generate.tasks.base import (
    REASONING_SCHEMA,
    ClipInput,
    Filtered,
    ModelSplit,
    ReasoningRow,
    cosmos_target,
    reject_text_leak,
)
from vlm_autodrive.builders.generate.tasks.reasoning_mcq import answer_regex

REVISES = "reasoning_mcq"


@dataclass(slots=True)
class RevisedRow(ReasoningRow):
    revised: bool
    revises: str  # id of the reasoning_mcq failure this trace revises


REVISED_SCHEMA = pa.schema([*REASONING_SCHEMA, ("revised", pa.bool_()), ("revises", pa.string())])


def _answer(clip: ClipInput) -> str:
    letters = option_letters(len(clip.mcq_options))
    return f"{clip.mcq_answer_letter}. {clip.mcq_options[letters.index(clip.mcq_answer_letter)]}"


def _letter(answer: str, options: tuple[str, ...]) -> str | None:
    """The answer letter of a failed trace, or None when it has none to read."""
    try:
        return extract_answer_letter(answer, list(options))
    except ParseError:
        return None


class ReasoningRevised(ModelSplit):
    name = "reasoning_revised"
    prompt = "reasoning_revised.jinja"
    inputs = ("caption", "vlm_caption", "question", "answer", "failed_reasoning", "failed_answer")
    row_type = RevisedRow
    schema = REVISED_SCHEMA
    description = (
        "Reasoning traces of reasoning_mcq that reached a wrong answer, revised by an LLM "
        "from the captions and the ground truth; kept when the revision ends in the ground "
        "truth, does not cite being told it, and (when on) an independent model re-asked "
        "with the trace alone concludes it."
    )
    reads_word_lists = True

    def expand(self, clips: list[ClipInput], earlier: list[Any]) -> list[ClipInput]:
        by_id = {c.clip_id: c for c in clips}
        out, seen = [], set()
        for f in sorted(earlier, key=lambda f: f.id):
            if getattr(f, "config", None) != REVISES or f.kind != "filtered":
                continue
            clip = by_id.get(f.clip_id)
            if clip is None or not clip.mcq_answer_letter:
                continue
            reasoning, answer = split_reasoning(f.raw_output or "", f.reasoning)
            if _letter(answer, clip.mcq_options) == clip.mcq_answer_letter:
                continue  # filtered for its text, not its answer: nothing to correct
            if (f.clip_id, reasoning, answer) in seen:  # the same wrong trace, revised once
                continue
            seen.add((f.clip_id, reasoning, answer))
            out.append(
                replace(
                    clip,
                    revises=f.id,
                    failed_sample=f.sample,
                    failed_reasoning=(reasoning or "").strip(),
                    failed_answer=answer.strip(),
                )
            )
        return out

    def memo_key(self, clip: ClipInput) -> tuple:
        return (clip.caption, clip.vlm_caption, clip.mcq_question, clip.label,
                clip.failed_reasoning, clip.failed_answer)  # fmt: skip

    def context(self, clip: ClipInput, taxonomy: Taxonomy) -> dict[str, Any] | None:
        if not clip.caption or not clip.mcq_question or clip.revises is None:
            return None
        return {
            "caption": clip.caption,
            "vlm_caption": clip.vlm_caption,
            "question": clip.mcq_question,
            "answer": _answer(clip),
            "failed_reasoning": clip.failed_reasoning or "(none)",
            "failed_answer": clip.failed_answer or "(none)",
        }

    def sample_contexts(self, taxonomy: Taxonomy) -> list[dict[str, Any]]:
        base = {
            "caption": "A car brakes.",
            "question": "Which event? A. x B. y C. z",
            "answer": "B. y",
            "failed_reasoning": "It is x.",
            "failed_answer": "<answer>A</answer>",
        }
        return [{**base, "vlm_caption": None}, {**base, "vlm_caption": "A road."}]

    def constraint(self, clip, reasoning_parser, taxonomy) -> dict[str, Any] | None:
        return {"regex": answer_regex(option_letters(len(clip.mcq_options)), not reasoning_parser)}

    def parse(self, completion, clip, sample, common, taxonomy) -> list[SplitRow]:
        assert self.lexicon is not None, "prepare() loads the phrase list first"
        reasoning, answer_text = split_reasoning(completion.text, completion.reasoning)
        letter = extract_answer_letter(answer_text, list(clip.mcq_options))
        require(bool(reasoning and reasoning.strip()), "no reasoning before the answer")
        check_content(reasoning, "reasoning")
        if letter != clip.mcq_answer_letter:
            raise Filtered(
                f"the revision answered {letter}, the ground truth is {clip.mcq_answer_letter}"
            )
        if leak := self.lexicon.leak(reasoning):
            raise Filtered(f"the revision cites being told the answer: {leak!r}")
        reject_text_leak(self.lexicon, reasoning)
        target = cosmos_target(reasoning, letter)
        return [
            RevisedRow(
                id=row_id(self.name, clip.clip_id, clip.failed_sample, sample),
                content_hash=content_hash(clip.mcq_question, target, clip.video),
                sample=sample,
                question=clip.mcq_question,
                options=list(clip.mcq_options),
                answer_letter=letter,
                answer=_answer(clip),
                reasoning=reasoning.strip(),
                target=target,
                revised=True,
                revises=clip.revises,
                **common,
            )
        ]


class RevisionCheck(ModelSplit):
    """The independent check of a revised trace: a model reads the question and the trace,
    not the answer, and must conclude the ground truth. Its failures are the split's
    (config `reasoning_revised`, reasons starting with "independent check")."""

    name = "reasoning_revised"
    prompt = "reasoning_revised_check.jinja"
    inputs = ("question", "trace")
    row_type = RevisedRow
    schema = REVISED_SCHEMA
    description = ReasoningRevised.description

    def expand(self, clips: list[ClipInput], earlier: list[Any]) -> list[ClipInput]:
        by_id = {c.clip_id: c for c in clips}
        return [
            replace(by_id[r.clip_id], candidate=r, revises=r.revises, failed_sample=r.sample)
            for r in sorted(earlier, key=lambda r: r.id)
            if r.clip_id in by_id
        ]

    def memo_key(self, clip: ClipInput) -> tuple:
        return (clip.mcq_question, clip.candidate.reasoning)

    def context(self, clip: ClipInput, taxonomy: Taxonomy) -> dict[str, Any] | None:
        return {"question": clip.mcq_question, "trace": clip.candidate.reasoning}

    def sample_contexts(self, taxonomy: Taxonomy) -> list[dict[str, Any]]:
        return [{"question": "Which event? A. x B. y C. z", "trace": "It is y."}]

    def constraint(self, clip, reasoning_parser, taxonomy) -> dict[str, Any] | None:
        return {"regex": answer_regex(option_letters(len(clip.mcq_options)), False)}

    def parse(self, completion, clip, sample, common, taxonomy) -> list[SplitRow]:
        _, answer_text = split_reasoning(completion.text, completion.reasoning)
        try:
            letter = extract_answer_letter(answer_text, list(clip.mcq_options))
        except ParseError as e:
            raise ParseError(f"independent check: {e}") from None
        if letter != clip.mcq_answer_letter:
            raise Filtered(
                f"independent check answered {letter} from the revised trace, the ground "
                f"truth is {clip.mcq_answer_letter}"
            )
        return [clip.candidate]


SPLIT = ReasoningRevised()
CHECK = RevisionCheck()
