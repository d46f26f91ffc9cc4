"""The RL rewards on the parser's own table of outputs (tests/builders/core/test_answers.py):
good, noisy, empty, truncated, malformed and hedged. Gold is B (Collision) there."""

from __future__ import annotations

import pytest

from tests.builders.core.test_answers import (
    CASES,
    COLL,
    COSMOS,
    NEAR,
    OPTION_TEXTS,
    OPTIONS,
    QUESTION,
)
from vlm_autodrive.trainer.rl.rewards import (
    answer_reward,
    completion_text,
    format_reward,
    trl_answer_reward,
    trl_format_reward,
)

GOLD = "B"  # Collision


def _has_tag(output: str | None) -> bool:
    return "<answer>" in (output or "").lower()


@pytest.mark.parametrize(("output", "label", "status"), CASES)
def test_answer_reward_on_the_parser_table(output, label, status):
    """1 exactly when the parser finds Collision inside an <answer> block; a bare "B"
    without the tag earns nothing (the reasoning prompt asks for the tag)."""
    expected = 1.0 if label == COLL and _has_tag(output) else 0.0
    assert answer_reward(output, GOLD, OPTIONS, OPTION_TEXTS) == expected
    # against gold A (Near-Collision) only Near-Collision answers in the tag pay
    near = 1.0 if label == NEAR and _has_tag(output) else 0.0
    assert answer_reward(output, "A", OPTIONS, OPTION_TEXTS) == near


def test_answer_reward_examples():
    assert answer_reward(COSMOS, "B", OPTIONS) == 1.0
    assert answer_reward(COSMOS, "b", OPTIONS) == 1.0
    assert answer_reward(COSMOS, "A", OPTIONS) == 0.0
    assert answer_reward("<answer>E</answer>", "B", OPTIONS) == 0.0  # not an option
    assert answer_reward("<answer>A</answer> and then <answer>B</answer>", "B", OPTIONS) == 0.0
    assert answer_reward("<answer>A. Collision</answer>", "A", OPTIONS) == 0.0  # conflict
    assert answer_reward(None, "B", OPTIONS) == 0.0


# Only COSMOS of the parser's table has the full layout with a single letter.
FORMAT_OK = {COSMOS}
EXTRA_FORMAT = [
    ("<think>x</think><answer>B</answer>", 1.0),
    ("<think>\nreasons\n</think>\n\n<answer>\nC\n</answer><|im_end|>", 1.0),
    ("  <think>r</think>\n<answer> A </answer>\n", 1.0),
    ("<think></think><answer>B</answer>", 0.0),  # no reasoning
    ("<think>r</think><answer>Collision</answer>", 0.0),  # a word, not a letter
    ("<think>r</think><answer>B</answer> because", 0.0),  # text after the answer
    ("Sure. <think>r</think><answer>B</answer>", 0.0),  # text before the think block
    ("<think>r</think>so<answer>B</answer>", 0.0),  # text in between
    ("<think>r</think><answer>A</answer><answer>B</answer>", 0.0),  # two answers
    ("<think>a<think>b</think><answer>B</answer>", 0.0),  # nested think
    ("<think>r<answer>B</answer></think><answer>B</answer>", 0.0),  # answer inside think
    ("<think>r</think>", 0.0),
    ("<answer>B</answer>", 0.0),
]


@pytest.mark.parametrize(("output", "label", "status"), CASES)
def test_format_reward_on_the_parser_table(output, label, status):
    assert format_reward(output) == (1.0 if output in FORMAT_OK else 0.0)


@pytest.mark.parametrize(("output", "expected"), EXTRA_FORMAT)
def test_format_reward_layouts(output, expected):
    assert format_reward(output) == expected


def test_trl_signature_reads_conversational_completions_and_columns():
    completions = [
        [{"role": "assistant", "content": COSMOS}],
        [{"role": "assistant", "content": [{"type": "text", "text": "<answer>A</answer>"}]}],
        "<think>r</think><answer>B</answer>",
    ]
    assert completion_text(completions[1]) == "<answer>A</answer>"
    cols = {"answer": ["B"] * 3, "options": [OPTIONS] * 3, "question": [QUESTION] * 3}
    prompts = [[{"role": "user", "content": "q"}]] * 3
    got = trl_answer_reward(prompts=prompts, completions=completions, **cols, id=["x"] * 3)
    assert got == [1.0, 0.0, 1.0]
    assert trl_format_reward(prompts=prompts, completions=completions, **cols) == [1.0, 0.0, 1.0]
