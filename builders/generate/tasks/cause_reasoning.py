"""The `cause_reasoning` split: reasoning traces that end in the answer to the clip's
cause question (the dataset's own, e.g. MM-AU's five options, from the `cause_vqa`
config), written by the reasoning model from the clip's captions; kept only when the
answer is the dataset's (the filter of `reasoning_mcq`), the rest `filtered`.
"""

from __future__ import annotations

from typing import Any

from vlm_autodrive.builders.generate.tasks.base import ClipInput
from vlm_autodrive.builders.generate.tasks.reasoning_mcq import ReasoningMcq


class CauseReasoning(ReasoningMcq):
    name = "cause_reasoning"
    prompt = "cause_reasoning.jinja"
    description = (
        "Step-by-step reasoning that ends in the answer to the dataset's cause question of "
        "each event clip, written by a reasoning LLM from the clip's captions; kept only "
        "when the answer is the dataset's."
    )

    def question(self, clip: ClipInput) -> tuple[str | None, tuple[str, ...], str | None]:
        return clip.cause_question, clip.cause_options, clip.cause_answer_letter

    def memo_key(self, clip: ClipInput) -> tuple:
        return (clip.caption, clip.vlm_caption, clip.cause_question)

    def sample_contexts(self, taxonomy) -> list[dict[str, Any]]:
        base = {"caption": "A car brakes.", "question": "Why? A. a B. b C. c D. d E. e"}
        return [{**base, "vlm_caption": None}, {**base, "vlm_caption": "A road."}]


SPLIT = CauseReasoning()
