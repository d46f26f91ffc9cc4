"""The `vqa` split: 5-7 multiple-choice questions per clip from its detailed caption.

In: the clip's detailed caption and label. Out: one `VqaRow` per question; the output
must be a JSON object (sent as a JSON-schema constraint) whose items have distinct
dimensions, 3-4 options, an answer within the options, and one `event_type` question
whose options are the classes and whose answer is the clip's label. Each question's
options are shown in an order seeded by its row id (`shown_order`), so answer letters are
balanced whatever order the model wrote them in. Every other answer
is checked against the clip's metadata (`builders/generate/facts.py`, the words of
`prompts/checks/fact_words.yaml`): an output with an answer that states a value the
metadata contradicts ("Heavy snow" for a clear-weather clip, "Rear" for the impact side
of a clip hit on the front, any impact side for a Normal Driving clip) is `filtered`
whole, with the question and the reason. Whole, not the one question: the questions
come from one output, and a model that contradicts the metadata in one answer wrote it
from something other than the caption, so its other answers are no better than guesses
that happened to pass (short_qa rejects the same way).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from vlm_autodrive.builders.core.answers import option_letters
from vlm_autodrive.builders.core.ranking import seeded_permutation
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.dataset.rows import COMMON_FIELDS, SplitRow, content_hash, row_id
from vlm_autodrive.builders.generate.degenerate import (
    check_answer_not_in_question,
    check_options,
    check_question,
)
from vlm_autodrive.builders.generate.facts import contradiction, subject_facts
from vlm_autodrive.builders.generate.parsing import ParseError, extract_json, require
from vlm_autodrive.builders.generate.tasks.base import ClipInput, Filtered, ModelSplit, lettered

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
# The metadata field each dimension asks about, and whose road user: `ego`, `other`, or
# None (every road user's values; for the impact side, the one the question names).
DIMENSION_FIELDS = {
    "event_type": ("event_type", None),
    "weather": ("weather", None),
    "lighting": ("light", None),
    "road_type": ("road", None),
    "scene": ("scene", None),
    "ego_motion": ("motion", "ego"),
    "other_actor": ("actor_type", "other"),
    "impact_side": ("impact_side", None),
    "blame": ("blame", None),
    "evasive_action": ("evasive_action", None),
}
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


# An option that points at others ("All of the above", "Both A and B") means what it
# says only in the order written: such a question keeps that order.
_REFERS_TO_OPTIONS = re.compile(
    r"\b(above|below|previous|following)\b|\b(both|neither|either)\b.*\b(and|nor|or)\b"
    r"|\b[A-D]\s*(and|or|&)\s*[A-D]\b",
    re.IGNORECASE,
)


def shown_order(options: list[str], row: str) -> list[str]:
    """`options` in the order a row shows them: a permutation seeded by the row's id,
    uniform over the orders, so each letter is the answer about as often as any other
    (the event question's options come in the classes' order, so its answer's letter
    would follow the class; a model's own questions favour some letters). A question
    with an option that refers to the others keeps the order written."""
    if any(_REFERS_TO_OPTIONS.search(o) for o in options):
        return list(options)
    return [options[i] for i in seeded_permutation(len(options), 0, row)]


class Vqa(ModelSplit):
    name = "vqa"
    prompt = "vqa.jinja"
    inputs = ("caption", "label", "classes", "dimensions", "min_questions", "max_questions")
    row_type = VqaRow
    schema = VQA_SCHEMA
    description = (
        "Multiple-choice questions about each clip on distinct dimensions (weather, road, "
        "motion, impact side, blame, ...), always including the event type, written by a "
        "text LLM from the clip's detailed caption; every answer checked against the "
        "clip's metadata."
    )
    reads_word_lists = True

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
            opts = shown_order(opts, row_id(self.name, clip.clip_id, sample, k))
            letter = letters[opts.index(answer_text)]
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
        for row in rows:
            self._check_facts(row, clip, taxonomy)
        return rows

    def _check_facts(self, row: VqaRow, clip: ClipInput, taxonomy: Taxonomy) -> None:
        """Filtered when the row's answer states a value the clip's metadata contradicts
        (the event question is checked against the label exactly, above)."""
        assert self.lexicon is not None, "prepare() loads the word lists first"
        if row.dimension == "event_type":
            return
        field, role = DIMENSION_FIELDS[row.dimension]
        answer = row.options[ord(row.answer_letter) - ord("A")]
        question = row.question.rsplit("\n", len(row.options) + 1)[0]  # without the options
        if field == "impact_side":  # "Which side of the bus is hit?"
            role = self.lexicon.subject(question, answer)
        facts = subject_facts(clip.facts, role)
        stated = self.lexicon.mentions(answer, asked=field)
        if why := contradiction(stated, facts, taxonomy.is_event(clip.label), role):
            raise Filtered(
                f"question {row.item + 1} ({row.dimension}): the answer {answer!r} contradicts "
                f"the metadata ({why})"
            )


SPLIT = Vqa()
