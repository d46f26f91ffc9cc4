"""Scoring the stored outputs: one prediction row per clip and mode.

In: an eval item, its MCQ row and the stored raw output. Out: the row of
`predictions.parquet` (gold, raw output, parsed answer, parse status and rule), parsed by
the answer parser that generation uses too (`builders/core/answers.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.answers import (
    UNPARSEABLE,
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
        parsed = parse_answer(text, row["options"], texts)
        parsed_label, letter = parsed.label, parsed.letter
        status, method, detail = parsed.status, parsed.method, parsed.detail
    prediction = parsed_label if parsed_label is not None else UNPARSEABLE
    return {
        "id": row.get("id"),
        "clip_id": row["clip_id"],
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


PREDICTION_COLUMNS = [
    ("id", "string"),
    ("clip_id", "string"),
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
