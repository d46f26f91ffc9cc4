"""The `reasoning_vqa` split: one multi-step question per clip with 4 options, the
answer and the reasons, written by a reasoning LLM from the clip's captions.

Out: one `ReasoningRow` per sample; its training target is the Cosmos-Reason1 form
with the reasons (numbered) as the thinking. Reasons that cite the text they were
written from (a phrase of `prompts/checks/text_leaks.txt`, such as "the description")
are `filtered`, with the reason.
"""

from __future__ import annotations

from typing import Any

from vlm_autodrive.builders.core.answers import option_letters
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.dataset.rows import SplitRow, content_hash, row_id
from vlm_autodrive.builders.generate.degenerate import check_content, check_mcq, check_reasons
from vlm_autodrive.builders.generate.parsing import extract_json, require
from vlm_autodrive.builders.generate.tasks.base import (
    REASONING_SCHEMA,
    ClipInput,
    ModelSplit,
    ReasoningRow,
    cosmos_target,
    lettered,
    reject_text_leak,
)

LETTERS = option_letters(4)  # a reasoning VQA question has four options
INSTRUCTION = "Think step by step, then answer with the letter of the correct option."
JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "question": {"type": "string", "minLength": 8, "maxLength": 300},
        "options": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 120},
            "minItems": 4,
            "maxItems": 4,
        },
        "answer": {"type": "string", "enum": ["A", "B", "C", "D"]},
        "reasons": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 300},
            "minItems": 1,
            "maxItems": 8,
        },
    },
    "required": ["question", "options", "answer", "reasons"],
}


class ReasoningVqa(ModelSplit):
    name = "reasoning_vqa"
    prompt = "reasoning_vqa.jinja"
    inputs = ("caption", "vlm_caption", "label")
    row_type = ReasoningRow
    schema = REASONING_SCHEMA
    description = (
        "One multi-step question per clip with four options, its answer and the reasons, "
        "written by a reasoning LLM from the clip's captions."
    )
    reads_word_lists = True

    def context(self, clip: ClipInput, taxonomy: Taxonomy) -> dict[str, Any] | None:
        if not clip.caption:
            return None
        return {"caption": clip.caption, "vlm_caption": clip.vlm_caption, "label": clip.label}

    def sample_contexts(self, taxonomy: Taxonomy) -> list[dict[str, Any]]:
        return [
            {"caption": "A car brakes.", "vlm_caption": v, "label": taxonomy.names[0]}
            for v in (None, "A road.")
        ]

    def constraint(
        self, clip: ClipInput, reasoning_parser: bool, taxonomy: Taxonomy
    ) -> dict[str, Any] | None:
        return {"json": JSON_SCHEMA}

    def parse(self, completion, clip, sample, common, taxonomy) -> list[SplitRow]:
        obj = extract_json(completion.text, completion.finish_reason)
        q, opts, ans, reasons = (obj.get(k) for k in ("question", "options", "answer", "reasons"))
        require(isinstance(q, str), "no question string")
        require(
            isinstance(opts, list) and len(opts) == 4 and all(isinstance(o, str) for o in opts),
            "need exactly four option strings",
        )
        require(
            isinstance(ans, str) and len(ans.strip()) == 1 and ans.strip().upper() in LETTERS,
            f"answer {ans!r} is not a letter A-D",
        )
        require(
            isinstance(reasons, list) and any(isinstance(r, str) and r.strip() for r in reasons),
            "no reasons",
        )
        letter = ans.strip().upper()
        steps = [r.strip() for r in reasons if isinstance(r, str) and r.strip()]
        check_mcq(q, opts, LETTERS.index(letter))
        check_reasons(steps)
        opts = [o.strip() for o in opts]
        reasoning = "\n".join(f"{i + 1}. {r}" for i, r in enumerate(steps))
        check_content(reasoning, "reasoning")
        reject_text_leak(self.lexicon, reasoning)
        question = lettered(q, opts, INSTRUCTION)
        target = cosmos_target(reasoning, letter)
        return [
            ReasoningRow(
                id=row_id(self.name, clip.clip_id, sample),
                content_hash=content_hash(question, target, clip.video),
                sample=sample,
                question=question,
                options=opts,
                answer_letter=letter,
                answer=f"{letter}. {opts[LETTERS.index(letter)]}",
                reasoning=reasoning,
                target=target,
                **common,
            )
        ]


SPLIT = ReasoningVqa()
