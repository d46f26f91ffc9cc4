"""The RL rewards: pure functions over one model output, no torch, no TRL.

In: a completion (the model's raw text) and the row's gold letter and options. Out: a
float. The answer is read by the same parser `autodrive eval` scores with
(`builders/core/answers.py`, `parse_answer`), with `require_tag`: only an
`<answer>...</answer>` block counts, as the reasoning mode asks for it.

- `answer_reward`: 1.0 when the parsed `<answer>` is the gold letter, else 0.0; an
  unparseable output (no tag, empty, hedged, a letter beyond the options, a letter whose
  words name another class) is 0.0. What `autodrive eval` calls correct in reasoning mode
  is exactly what earns 1.0 here (for outputs with the tag).
- `format_reward`: 1.0 when the output is one `<think>...</think>` block followed by one
  `<answer>X</answer>` block holding a single option letter, whitespace around and
  special tokens (`<|im_end|>`) aside; nothing before, between or after. This is
  Cosmos-Reason1's layout (`<think>\\n...\\n</think>\\n\\n<answer>\\nX\\n</answer>`), a little
  more lenient about blank lines than cosmos-rl's `format` reward, stricter about the
  answer being one letter.

`trl_reward_funcs()` wraps both in the signature TRL's `GRPOTrainer` calls reward
functions with (`prompts`, `completions`, dataset columns as keyword lists).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from vlm_autodrive.builders.core.answers import (
    OK,
    OPTION_LETTERS,
    option_texts_from_question,
    parse_answer,
)

_SPECIAL_TOKEN = re.compile(r"<\|[^|<>]{1,40}\|>")
_FORMAT = re.compile(
    r"<think>((?:(?!</?think>|</?answer>).)*)</think>\s*"
    r"<answer>\s*([" + OPTION_LETTERS + r"])\s*</answer>",
    re.DOTALL | re.IGNORECASE,
)


def answer_reward(
    completion: str | None,
    gold_letter: str,
    options: Sequence[str],
    option_texts: Sequence[str] | None = None,
) -> float:
    """1.0 when the output's `<answer>` block names the option `gold_letter`, else 0.0."""
    parsed = parse_answer(completion, options, option_texts, require_tag=True)
    ok = parsed.status == OK and parsed.letter == gold_letter.strip().upper()
    return 1.0 if ok else 0.0


def format_reward(completion: str | None) -> float:
    """1.0 when the output is exactly `<think>...</think>` then `<answer>X</answer>`."""
    text = _SPECIAL_TOKEN.sub(" ", completion or "").strip()
    m = _FORMAT.fullmatch(text)
    return 1.0 if m and m.group(1).strip() else 0.0


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a string (standard format) or a list of messages
    (conversational format: the assistant turn, content a string or text parts)."""
    if isinstance(completion, str):
        return completion
    parts = []
    for message in completion:
        content = message.get("content", "")
        if isinstance(content, str):
            parts.append(content)
        else:
            parts += [p.get("text") or "" for p in content if p.get("type") == "text"]
    return "".join(parts)


def trl_answer_reward(completions, answer, options, question=None, **_) -> list[float]:
    """`answer_reward` per completion, in TRL's reward-function signature: `answer`,
    `options` and `question` are the dataset's columns, one value per completion."""
    questions = question if question is not None else [None] * len(completions)
    out = []
    for c, gold, opts, q in zip(completions, answer, options, questions):
        texts = option_texts_from_question(q, len(opts)) if q else None
        out.append(answer_reward(completion_text(c), gold, opts, texts))
    return out


def trl_format_reward(completions, **_) -> list[float]:
    """`format_reward` per completion, in TRL's reward-function signature."""
    return [format_reward(completion_text(c)) for c in completions]


def trl_reward_funcs() -> list:
    """The reward functions of the GRPO recipe, in the order of its `reward_weights`."""
    return [trl_answer_reward, trl_format_reward]
