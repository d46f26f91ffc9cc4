"""Scoring the stored outputs: one prediction row per clip and mode.

In: an eval item, its MCQ row and the stored raw output. Out: the row of
`predictions.parquet` (gold, raw output, parsed answer, parse status and rule, the clip's
source video for clustered intervals), parsed by the answer parser that generation uses
too (`builders/core/answers.py`).

In reasoning mode the answer is the closed `<answer>...</answer>` block and nothing else:
an output without one (cut off at the token limit, or never written) is unparseable,
never scanned for class names (a random model's cut-off reasoning names classes by
chance). Direct and blind modes read the reply with every rule of the parser.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.answers import (
    NO_ANSWER,
    TRUNCATED,
    UNPARSEABLE,
    ParsedAnswer,
    option_texts_from_question,
    parse_answer,
)
from vlm_autodrive.builders.core.files import write_parquet
from vlm_autodrive.trainer.eval.runners.base import EvalItem


def prediction_row(
    item: EvalItem, row: dict[str, Any], rec: dict[str, Any] | None, model: str, ref: str
) -> dict[str, Any]:
    """One clip and mode scored: the stored output `rec` (None: no output) parsed against
    the MCQ `row`'s options by the one answer parser (`builders/core/answers.py`)."""
    error = "no output" if rec is None else rec["error"]
    text = "" if rec is None else rec["text"]
    if error:
        parsed_label, letter, status, method, detail = None, None, "error", "", error
    else:
        texts = option_texts_from_question(row["question"], len(row["options"]))
        if item.mode == "reasoning":
            parsed = parse_closed_answer(text, row["options"], texts, rec.get("finish_reason"))
        else:
            parsed = parse_answer(text, row["options"], texts)
        parsed_label, letter = parsed.label, parsed.letter
        status, method, detail = parsed.status, parsed.method, parsed.detail
    prediction = parsed_label if parsed_label is not None else UNPARSEABLE
    return {
        "id": row.get("id"),
        "clip_id": row["clip_id"],
        "video_id": row.get("video_id") or row["clip_id"],
        "video": row["video"],
        "mode": item.mode,
        "model": model,
        "gold": row["label"],
        "gold_letter": row["answer_letter"],
        "options": list(row["options"]),
        "raw_output": text,
        "reasoning": None if rec is None else rec.get("reasoning"),
        "finish_reason": None if rec is None else rec.get("finish_reason"),
        "prediction": prediction,
        "parsed_letter": letter,
        "parse_status": status,
        "parse_method": method,
        "parse_detail": detail,
        "correct": prediction == row["label"],
        "prompt_template": ref,
    }


_CLOSED_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)


def parse_closed_answer(
    text: str, options: list[str], texts: list[str] | None, finish_reason: str | None
) -> ParsedAnswer:
    """A reasoning-mode reply read from its closed `<answer>...</answer>` blocks only."""
    blocks = _CLOSED_ANSWER.findall(text or "")
    if not blocks:
        cut = finish_reason == "length"
        detail = "no closed <answer>...</answer>" + (" (cut off at the token limit)" if cut else "")
        return ParsedAnswer(None, None, TRUNCATED if cut else NO_ANSWER, "", detail)
    closed = "".join(f"<answer>{b}</answer>" for b in blocks)
    return parse_answer(closed, options, texts, require_tag=True)


PREDICTION_COLUMNS = [
    ("id", "string"),
    ("clip_id", "string"),
    ("video_id", "string"),
    ("video", "string"),
    ("mode", "string"),
    ("model", "string"),
    ("gold", "string"),
    ("gold_letter", "string"),
    ("options", "list<string>"),
    ("raw_output", "string"),
    ("reasoning", "string"),
    ("finish_reason", "string"),
    ("prediction", "string"),
    ("parsed_letter", "string"),
    ("parse_status", "string"),
    ("parse_method", "string"),
    ("parse_detail", "string"),
    ("correct", "bool"),
    ("prompt_template", "string"),
]


def write_predictions(preds: list[dict[str, Any]], path: Path) -> None:
    """Write prediction rows as `predictions.parquet` (atomically)."""
    import pyarrow as pa

    types = {"string": pa.string(), "bool": pa.bool_(), "list<string>": pa.list_(pa.string())}
    schema = pa.schema([(n, types[t]) for n, t in PREDICTION_COLUMNS])
    table = pa.Table.from_pylist(preds, schema=schema)
    write_parquet(table, path)
