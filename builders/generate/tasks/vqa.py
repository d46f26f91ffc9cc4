"""The `vqa` split: 5-7 multiple-choice questions per clip from its detailed caption.

In: the clip's detailed caption and label. Out: one `VqaRow` per question; the output
must be a JSON object (sent as a JSON-schema constraint) whose items have distinct
dimensions, 3-4 options, an answer within the options, and one `event_type` question
whose options are the classes and whose answer is the clip's label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from vlm_autodrive.builders.core.answers import option_letters
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.dataset.rows import COMMON_FIELDS, SplitRow, content_hash, row_id
from vlm_autodrive.builders.generate.degenerate import (
    check_answer_not_in_question,
    check_options,
    check_question,
)
from vlm_autodrive.builders.generate.parsing import ParseError, extract_json, require
from vlm_autodrive.builders.generate.tasks.base import ClipInput, ModelSplit, lettered

DIMENSIONS = [
    "event_type",
    "weather",
    "lighting",
    "road_type",
    "scene",
    "ego_motion",
    "other_actor",
    "impact_side",
    "blame",
    "evasive_action",
]
MIN_QUESTIONS, MAX_QUESTIONS = 5, 7
INSTRUCTION = "Answer with the letter of the correct option."


@dataclass(slots=True)
class VqaRow(SplitRow):
    """One question: `question` as asked (lettered options), `answer` as `X. text`."""

    sample: int
    item: int
    dimension: str
    question: str
    options: list[str]
    answer_letter: str
    answer: str


VQA_SCHEMA = pa.schema(
    [
        *COMMON_FIELDS,
        ("sample", pa.int32()),
        ("item", pa.int32()),
        ("dimension", pa.string()),
        ("question", pa.string()),
        ("options", pa.list_(pa.string())),
        ("answer_letter", pa.string()),
        ("answer", pa.string()),
    ]
)

JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "questions": {
            "type": "array",
            "minItems": MIN_QUESTIONS,
            "maxItems": MAX_QUESTIONS,
            "items": {
                "type": "object",
                "properties": {
                    "dimension": {"type": "string", "enum": DIMENSIONS},
                    "question": {"type": "string", "minLength": 8, "maxLength": 200},
                    "options": {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1, "maxLength": 80},
                        "minItems": 3,
                        "maxItems": 4,
                    },
                    "answer": {"type": "string", "enum": ["A", "B", "C", "D"]},
                },
                "required": ["dimension", "question", "options", "answer"],
            },
        }
    },
    "required": ["questions"],
}


def clip_schema(classes: list[str], label: str) -> dict[str, Any]:
    """JSON_SCHEMA for one clip: the first question is the event-type question, its
    options the classes in the prompt's order and its answer the clip's label (the
    ground truth the prompt states; the parser would reject anything else), so the model
    spends its tokens on the other questions. Repeated options and dimensions are not
    expressible in the constraint (xgrammar ignores `uniqueItems`): the parser checks
    them."""
    item = JSON_SCHEMA["properties"]["questions"]["items"]
    others = [d for d in DIMENSIONS if d != "event_type"]
    event = {
        **item,
        "properties": {
            **item["properties"],
            "dimension": {"const": "event_type"},
            "options": {"const": list(classes)},
            "answer": {"const": option_letters(len(classes))[classes.index(label)]},
        },
    }
    rest = {**item, "properties": {**item["properties"], "dimension": {"enum": others}}}
    questions = {**JSON_SCHEMA["properties"]["questions"], "prefixItems": [event], "items": rest}
    return {**JSON_SCHEMA, "properties": {"questions": questions}}


class Vqa(ModelSplit):
    name = "vqa"
    prompt = "vqa.jinja"
    inputs = ("caption", "label", "classes", "dimensions", "min_questions", "max_questions")
    row_type = VqaRow
    schema = VQA_SCHEMA
    description = (
        "Multiple-choice questions about each clip on distinct dimensions (weather, road, "
        "motion, impact side, blame, ...), always including the event type, written by a "
        "text LLM from the clip's detailed caption."
    )

    def context(self, clip: ClipInput, taxonomy: Taxonomy) -> dict[str, Any] | None:
        if not clip.caption:
            return None
        return {
            "caption": clip.caption,
            "label": clip.label,
            "classes": taxonomy.names,
            "dimensions": DIMENSIONS,
            "min_questions": MIN_QUESTIONS,
            "max_questions": MAX_QUESTIONS,
        }

    def sample_contexts(self, taxonomy: Taxonomy) -> list[dict[str, Any]]:
        clip = ClipInput(
            "c",
            "v",
            taxonomy.names[0],
            "train",
            "c.mp4",
            "/c.mp4",
            "A car drives in the rain.",
            None,
            None,
        )
        return [self.context(clip, taxonomy)]

    def constraint(
        self, clip: ClipInput, reasoning_parser: bool, taxonomy: Taxonomy
    ) -> dict[str, Any] | None:
        return {"json": clip_schema(taxonomy.names, clip.label)}

    def parse(self, completion, clip, sample, common, taxonomy) -> list[SplitRow]:
        obj = extract_json(completion.text, completion.finish_reason)
        items = obj.get("questions")
        require(isinstance(items, list), "no `questions` list")
        require(
            MIN_QUESTIONS <= len(items) <= MAX_QUESTIONS,
            f"{len(items)} questions (need {MIN_QUESTIONS}-{MAX_QUESTIONS})",
        )
        rows, seen = [], set()
        event_answer = None
        classes = taxonomy.names
        for k, item in enumerate(items):
            require(isinstance(item, dict), f"question {k + 1} is not an object")
            dim, q, opts, ans = (
                item.get(f) for f in ("dimension", "question", "options", "answer")
            )
            require(
                isinstance(dim, str) and dim in DIMENSIONS,
                f"question {k + 1}: bad dimension {dim!r}",
            )
            require(dim not in seen, f"dimension {dim!r} repeats")
            seen.add(dim)
            require(isinstance(q, str), f"question {k + 1}: no question string")
            require(
                isinstance(opts, list) and all(isinstance(o, str) for o in opts),
                f"question {k + 1}: options must be strings",
            )
            check_question(q, f"question {k + 1}")
            check_options(opts, f"question {k + 1}")
            opts = [o.strip() for o in opts]
            if dim == "event_type":
                require(
                    sorted(opts) == sorted(classes),
                    f"event question options {opts} are not the classes {classes}",
                )
            else:
                require(3 <= len(opts) <= 4, f"question {k + 1}: {len(opts)} options (need 3-4)")
            letters = option_letters(len(opts))
            require(
                isinstance(ans, str) and ans.strip().upper() in letters,
                f"question {k + 1}: answer {ans!r} not within the options",
            )
            letter = ans.strip().upper()
            answer_text = opts[letters.index(letter)]
            check_answer_not_in_question(q, opts, letters.index(letter), f"question {k + 1}")
            if dim == "event_type":
                event_answer = answer_text
            question = lettered(q, opts, INSTRUCTION)
            answer = f"{letter}. {answer_text}"
            rows.append(
                VqaRow(
                    id=row_id(self.name, clip.clip_id, sample, k),
                    content_hash=content_hash(question, answer, clip.video),
                    sample=sample,
                    item=k,
                    dimension=dim,
                    question=question,
                    options=opts,
                    answer_letter=letter,
                    answer=answer,
                    **common,
                )
            )
        require(event_answer is not None, "no event_type question")
        if event_answer != clip.label:
            raise ParseError(
                f"event question answered {event_answer!r}, the clip is {clip.label!r}"
            )
        return rows


SPLIT = Vqa()
