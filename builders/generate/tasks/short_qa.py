"""The `short_qa` split: 3-5 short open questions and answers per clip, from its caption.

In: the clip's detailed caption and the dimensions its metadata has a value for (only
those may be asked: a question the metadata cannot check is not asked). Out: one
`ShortQaRow` per question. The output is a JSON object (sent as a JSON-schema
constraint); every answer must name its dimension's value in the metadata, in the words
of `prompts/checks/fact_words.yaml`, and no other value of the taxonomy's vocabulary that
the metadata contradicts (an answer "in the rain" for a clear-weather clip is
`filtered`, with the reason). An answer on a road user's motion or impact side is
checked against the road user its question names: "How is the ego vehicle moving?" ->
"It is turning right." is filtered when only the other road user turns right.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.dataset.rows import COMMON_FIELDS, SplitRow, content_hash, row_id
from vlm_autodrive.builders.generate.degenerate import check_open_qa
from vlm_autodrive.builders.generate.facts import (
    FIELDS,
    ROLE_FIELDS,
    contradiction,
    subject_facts,
    whose,
)
from vlm_autodrive.builders.generate.parsing import extract_json, require
from vlm_autodrive.builders.generate.tasks.base import ClipInput, Filtered, ModelSplit

MIN_PAIRS, MAX_PAIRS = 3, 5
MAX_ANSWER_WORDS = 15
# What each dimension asks, as the prompt tells the model.
ASKS = {
    "event_type": "what kind of event happens (collision, near-collision or normal driving)",
    "weather": "the weather",
    "light": "the lighting (daylight, dawn, dusk, night)",
    "road": "the kind of road",
    "scene": "the surroundings (city, suburb, countryside, highway)",
    "actor_type": "who the other road users are (car, truck, pedestrian, ...)",
    "motion": "how a road user moves (turning, braking, changing lanes, ...)",
    "impact_side": "where the impact is (front, rear, left or right side)",
    "blame": "who is at fault",
    "evasive_action": "what the ego driver does to avoid the danger",
}


@dataclass(slots=True)
class ShortQaRow(SplitRow):
    sample: int
    item: int
    dimension: str
    question: str
    answer: str


SHORT_QA_SCHEMA = pa.schema(
    [
        *COMMON_FIELDS,
        ("sample", pa.int32()),
        ("item", pa.int32()),
        ("dimension", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
    ]
)


def clip_schema(dimensions: list[str]) -> dict[str, Any]:
    """The JSON-schema constraint: 3-5 pairs, each on a dimension the clip can check."""
    return {
        "type": "object",
        "properties": {
            "pairs": {
                "type": "array",
                "minItems": MIN_PAIRS,
                "maxItems": MAX_PAIRS,
                "items": {
                    "type": "object",
                    "properties": {
                        "dimension": {"type": "string", "enum": dimensions},
                        "question": {"type": "string", "minLength": 8, "maxLength": 160},
                        "answer": {"type": "string", "minLength": 2, "maxLength": 100},
                    },
                    "required": ["dimension", "question", "answer"],
                },
            }
        },
        "required": ["pairs"],
    }


class ShortQa(ModelSplit):
    name = "short_qa"
    prompt = "short_qa.jinja"
    inputs = ("caption", "dimensions", "min_pairs", "max_pairs", "max_words")
    row_type = ShortQaRow
    schema = SHORT_QA_SCHEMA
    description = (
        "Short open questions and answers about each clip (who, what moved, where the "
        "impact was, weather, road), written by a text LLM from the detailed caption; "
        "every answer checked against the clip's metadata."
    )
    reads_word_lists = True

    def memo_key(self, clip: ClipInput) -> tuple:
        return (clip.caption, tuple(sorted(clip.facts)))

    def _dimensions(self, clip: ClipInput) -> list[str]:
        return [d for d in FIELDS if d in clip.facts]

    def context(self, clip: ClipInput, taxonomy: Taxonomy) -> dict[str, Any] | None:
        dims = self._dimensions(clip)
        if not clip.caption or len(dims) < MIN_PAIRS:
            return None
        return {
            "caption": clip.caption,
            "dimensions": [{"name": d, "asks": ASKS[d]} for d in dims],
            "min_pairs": MIN_PAIRS,
            "max_pairs": MAX_PAIRS,
            "max_words": MAX_ANSWER_WORDS,
        }

    def sample_contexts(self, taxonomy: Taxonomy) -> list[dict[str, Any]]:
        facts = {"event_type": ("Collision",), "weather": ("rain",), "road": ("highway",)}
        clip = ClipInput("c", "v", "Collision", "train", "c.mp4", "/c.mp4", "A car.", None, None)
        return [self.context(replace(clip, facts=facts), taxonomy)]

    def constraint(self, clip, reasoning_parser, taxonomy) -> dict[str, Any] | None:
        return {"json": clip_schema(self._dimensions(clip))}

    def parse(self, completion, clip, sample, common, taxonomy) -> list[SplitRow]:
        assert self.lexicon is not None, "prepare() loads the word lists first"
        obj = extract_json(completion.text, completion.finish_reason)
        pairs = obj.get("pairs")
        require(isinstance(pairs, list), "no `pairs` list")
        require(
            MIN_PAIRS <= len(pairs) <= MAX_PAIRS,
            f"{len(pairs)} pairs (need {MIN_PAIRS}-{MAX_PAIRS})",
        )
        rows, seen_dims, seen_q = [], set(), set()
        for k, pair in enumerate(pairs):
            require(isinstance(pair, dict), f"pair {k + 1} is not an object")
            dim, q, a = (pair.get(f) for f in ("dimension", "question", "answer"))
            require(
                isinstance(dim, str) and dim in FIELDS and dim in clip.facts,
                f"pair {k + 1}: dimension {dim!r} is not one the clip's metadata can check "
                f"({self._dimensions(clip)})",
            )
            require(dim not in seen_dims, f"dimension {dim!r} repeats")
            seen_dims.add(dim)
            require(isinstance(q, str), f"pair {k + 1}: no question string")
            require(isinstance(a, str) and a.strip() != "", f"pair {k + 1}: empty answer")
            q, a = " ".join(q.split()), " ".join(a.split())
            check_open_qa(q, a, f"pair {k + 1}")
            require(q.endswith("?"), f"pair {k + 1}: the question does not end with '?'")
            require(q.lower() not in seen_q, f"pair {k + 1}: the question repeats")
            seen_q.add(q.lower())
            words = len(a.split())
            require(
                words <= MAX_ANSWER_WORDS,
                f"pair {k + 1}: answer of {words} words (at most {MAX_ANSWER_WORDS})",
            )
            # Whole-sentence phrases only: the bare answer words (`answers:`, "ego" for
            # a fault) would misread a sentence ("The truck is at fault for hitting the
            # ego vehicle.").
            stated = self.lexicon.mentions(a)
            # The motion or impact side of the road user the question names ("How is the
            # ego vehicle moving?"); a question that names none or both is checked
            # against every road user's (lenient: the subject cannot be told). Other
            # dimensions are checked against every road user's: "A bus turning right
            # hits it." answers "What happens to the ego vehicle?" rightly.
            role = self.lexicon.subject(q, a) if dim in ROLE_FIELDS else None
            facts = subject_facts(clip.facts, role)
            who = whose(role)
            truth = facts.get(dim, ())
            if why := contradiction(stated, facts, taxonomy.is_event(clip.label), role):
                raise Filtered(
                    f"pair {k + 1} ({dim}): the answer {a!r} contradicts the metadata ({why})"
                )
            if not truth:
                raise Filtered(f"pair {k + 1} ({dim}): the metadata has no {dim}{who} to check")
            if not set(stated.get(dim, ())) & set(truth):
                raise Filtered(
                    f"pair {k + 1} ({dim}): the answer {a!r} does not name the metadata's "
                    f"value{who} {', '.join(truth)}"
                )
            rows.append(
                ShortQaRow(
                    id=row_id(self.name, clip.clip_id, sample, k),
                    content_hash=content_hash(q, a, clip.video),
                    sample=sample,
                    item=k,
                    dimension=dim,
                    question=q,
                    answer=a,
                    **common,
                )
            )
        return rows


SPLIT = ShortQa()
