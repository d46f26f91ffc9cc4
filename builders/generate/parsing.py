"""Parsing model outputs: JSON objects and `<answer>` letters, with a reason on failure.

Parsers never guess: an output that does not say one thing clearly raises ParseError
with the reason, and the caller keeps the raw output in the `failures` config.
"""

from __future__ import annotations

import json
import re
from typing import Any

from vlm_autodrive.builders.core.answers import OK, parse_answer


class ParseError(ValueError):
    """The output cannot be used; the message is the reason stored with it."""


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)


def extract_json(text: str, finish_reason: str | None = None) -> dict[str, Any]:
    """The JSON object in `text` (code fences and text around it are tolerated)."""
    if not text.strip():
        raise ParseError("empty output")
    body = _FENCE.sub("", text.strip())
    start = body.find("{")
    if start < 0:
        raise ParseError("no JSON object in the output")
    end = body.rfind("}")
    if end < start:
        cut = " (cut off at max_tokens)" if finish_reason == "length" else ""
        raise ParseError(f"truncated JSON: no closing brace{cut}")
    try:
        obj = json.loads(body[start : end + 1])
    except json.JSONDecodeError as e:
        cut = " (cut off at max_tokens)" if finish_reason == "length" else ""
        raise ParseError(f"invalid JSON: {e.msg} at char {e.pos}{cut}") from None
    return obj  # it starts with "{", so it is an object


def extract_answer_letter(text: str, options: list[str]) -> str:
    """The option letter the output's `<answer>` block names, read by the evaluation's own
    parser (`core/answers.py`), so generation keeps exactly what eval would score."""
    parsed = parse_answer(text, options, require_tag=True)
    if parsed.status != OK:
        raise ParseError(parsed.detail or parsed.status)
    return parsed.letter


def require(cond: bool, reason: str) -> None:
    if not cond:
        raise ParseError(reason)
