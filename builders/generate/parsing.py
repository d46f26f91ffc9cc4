"""Parsing model outputs: JSON objects and `<answer>` letters, with a reason on failure.

Parsers never guess: an output that does not say one thing clearly raises ParseError
with the reason, and the caller keeps the raw output in the `failures` config under
the error's `kind` (`parse`; `degenerate` for well-formed but degenerate content, see
`builders/generate/degenerate.py`). `check_output_text` refuses text no row may carry:
control characters (terminal escapes) and invalid Unicode.
"""

from __future__ import annotations

import json
import re
from typing import Any

from vlm_autodrive.builders.core.answers import OK, parse_answer


class ParseError(ValueError):
    """The output cannot be used; the message is the reason stored with it, under the
    failure kind `kind`."""

    kind = "parse"


class Degenerate(ParseError):
    """Well-formed output whose content is degenerate (repetition, placeholder or
    duplicate options, an answer copied into its question, ...): failure kind
    `degenerate`. `reason` is one of `degenerate.REASONS`; the message starts with it."""

    kind = "degenerate"

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


# C0 and C1 control characters but tab and newline (a carriage return only before a
# newline): terminal escapes and cursor moves that `show` or a log would replay.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# All three at once: most strings hold none, and one search is all they cost.
_ANY_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffd]|\r(?!\n)")


def check_output_text(text: str | None, what: str = "output") -> None:
    """ParseError (kind `parse`) when `text` holds a control character other than tab
    and newline, a lone surrogate (invalid Unicode) or U+FFFD (bytes the server could not
    decode); the reason names the character and where it is."""
    if not text or not _ANY_BAD.search(text):
        return
    for pattern, name in (
        (_CONTROL, "control character"),
        (_SURROGATE, "invalid Unicode (lone surrogate)"),
    ):
        if m := pattern.search(text):
            raise ParseError(f"{name} {m.group()!a} at char {m.start()} of the {what}")
    if (at := text.find("\ufffd")) >= 0:
        run = len(text[at:]) - len(text[at:].lstrip("\ufffd"))
        raise ParseError(
            f"invalid Unicode: {run} U+FFFD replacement character(s) at char {at} of the "
            f"{what} (bytes that were not UTF-8)"
        )


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
    _check_strings(obj, "JSON")  # an escape such as \\u001b or \\ud800 decodes to one
    return obj  # it starts with "{", so it is an object


def _check_strings(value: Any, where: str) -> None:
    """check_output_text on every string in a decoded JSON value (keys included)."""
    if isinstance(value, str):
        check_output_text(value, where)
    elif isinstance(value, dict):
        for k, v in value.items():
            check_output_text(k, f"{where} key")
            _check_strings(v, f"{where} `{k}`" if where == "JSON" else where)
    elif isinstance(value, list):
        for v in value:
            _check_strings(v, where)


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
