"""The `reasoning_mcq` split: reasoning traces that end in the answer to the clip's MCQ.

In: the clip's detailed caption, its VLM caption when built, and its MCQ (the `mcq`
config's question, so the options are in the same order). Out: one
`ReasoningRow` per sample whose answer is the ground truth (the paper's filter);
samples with another answer are `Filtered` (kept in `failures`, kind `filtered`), so
`yield = rows / samples` is reported. A trace that cites the text it was written from
(a phrase of `prompts/checks/text_leaks.txt`, such as "the description") is `filtered`
too, with its reason.
"""

from __future__ import annotations

from typing import Any

from vlm_autodrive.builders.core.answers import option_letters
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.dataset.rows import SplitRow, content_hash, row_id
from vlm_autodrive.builders.generate.backends.base import split_reasoning
from vlm_autodrive.builders.generate.degenerate import check_content
from vlm_autodrive.builders.generate.parsing import extract_answer_letter, require
from vlm_autodrive.builders.generate.tasks.base import (
    REASONING_SCHEMA,
    ClipInput,
    Filtered,
    ModelSplit,
    ReasoningRow,
    cosmos_target,
    reject_text_leak,
)


def answer_regex(letters: str, with_think: bool) -> str:
    """The answer format; without a server-side reasoning parser the think block is part
    of it, so the model still writes its reasoning before the constrained answer."""
    answer = rf"<answer>\n?[{letters}]\n?</answer>"
    return rf"<think>\n[^<]{{20,}}\n</think>\n\n{answer}" if with_think else answer


class ReasoningMcq(ModelSplit):
    name = "reasoning_mcq"
    prompt = "reasoning_mcq.jinja"
    inputs = ("caption", "vlm_caption", "question")
    row_type = ReasoningRow
    schema = REASONING_SCHEMA
    description = (
        "Step-by-step reasoning that ends in the answer to each clip's event question, "
        "written by a reasoning LLM from the clip's captions; kept only when the answer "
        "is the ground truth."
    )
    reads_word_lists = True

    def question(self, clip: ClipInput) -> tuple[str | None, tuple[str, ...], str | None]:
        """The question asked, its options and the ground-truth letter (the clip's MCQ)."""
        return clip.mcq_question, clip.mcq_options, clip.mcq_answer_letter

    def context(self, clip: ClipInput, taxonomy: Taxonomy) -> dict[str, Any] | None:
        question = self.question(clip)[0]
        if not clip.caption or not question:
            return None
        return {"caption": clip.caption, "vlm_caption": clip.vlm_caption, "question": question}

    def sample_contexts(self, taxonomy: Taxonomy) -> list[dict[str, Any]]:
        base = {"caption": "A car brakes.", "question": "Which event? A. x B. y C. z"}
        return [{**base, "vlm_caption": None}, {**base, "vlm_caption": "A road."}]

    def constraint(
        self, clip: ClipInput, reasoning_parser: bool, taxonomy: Taxonomy
    ) -> dict[str, Any] | None:
        options = self.question(clip)[1]
        return {"regex": answer_regex(option_letters(len(options)), not reasoning_parser)}

    def parse(self, completion, clip, sample, common, taxonomy) -> list[SplitRow]:
        question, options, truth = self.question(clip)
        reasoning, answer_text = split_reasoning(completion.text, completion.reasoning)
        letters = option_letters(len(options))
        letter = extract_answer_letter(answer_text, list(options))
        require(bool(reasoning and reasoning.strip()), "no reasoning before the answer")
        check_content(reasoning, "reasoning")
        if letter != truth:
            raise Filtered(f"answered {letter}, the ground truth is {truth}")
        reject_text_leak(self.lexicon, reasoning)
        answer = f"{letter}. {options[letters.index(letter)]}"
        target = cosmos_target(reasoning, letter)
        return [
            ReasoningRow(
                id=row_id(self.name, clip.clip_id, sample),
                content_hash=content_hash(question, target, clip.video),
                sample=sample,
                question=question,
                options=list(options),
                answer_letter=letter,
                answer=answer,
                reasoning=reasoning.strip(),
                target=target,
                **common,
            )
        ]


SPLIT = ReasoningMcq()
