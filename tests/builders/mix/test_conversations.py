"""Rows -> messages: the turn layout, the reasoning form, and batch == row by row."""

from __future__ import annotations

import pyarrow as pa
import pytest

from vlm_autodrive.builders.mix.conversations import (
    MESSAGES_TYPE,
    batch_messages,
    chat_ready,
    load_system_prompt,
    missing_columns,
    reasoning_form,
    row_messages,
)

MCQ = {
    "question": "What happens?\nA. Collision\nB. Near-Collision\nC. Normal Driving",
    "answer": "B. Near-Collision",
    "video": "clips/v0001/v0001_0005500.mp4",
}
THINK = "The truck brakes hard.\nNo contact is made."


def test_a_row_becomes_system_user_with_the_clip_and_assistant():
    msgs = row_messages(MCQ, "SYS", reasoning=True)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
    assert msgs[0]["content"] == [{"type": "text", "text": "SYS", "video": None}]
    assert msgs[1]["content"] == [
        {"type": "video", "text": None, "video": "clips/v0001/v0001_0005500.mp4"},
        {"type": "text", "text": MCQ["question"], "video": None},
    ]
    assert msgs[2]["content"][0]["text"] == "B. Near-Collision"
    assert [m["role"] for m in row_messages(MCQ, None, True)] == ["user", "assistant"]


def test_reasoning_rows_answer_in_the_cosmos_reason1_form():
    target = reasoning_form(THINK, "B")
    assert target == f"<think>\n{THINK}\n</think>\n\n<answer>\nB\n</answer>"
    with_target = {**MCQ, "answer": "B", "reasoning": THINK, "target": target}
    assert row_messages(with_target, "S", True)[-1]["content"][0]["text"] == target
    # no target column: composed from the reasoning and the answer
    composed = {**MCQ, "answer": "B", "reasoning": THINK}
    assert row_messages(composed, "S", True)[-1]["content"][0]["text"] == target
    # reasoning off: the answer only
    assert row_messages(with_target, "S", False)[-1]["content"][0]["text"] == "B"


def test_batch_messages_equal_row_messages_row_by_row():
    rows = [
        {**MCQ, "answer": "B", "reasoning": THINK, "target": reasoning_form(THINK, "B")},
        {**MCQ, "answer": "A", "reasoning": "  spaced  ", "target": None},
        {**MCQ, "answer": "C", "reasoning": None, "target": None},
        {**MCQ, "answer": "C", "reasoning": "", "target": ""},
    ]
    table = pa.Table.from_pylist(rows)
    for system in ("SYS", None):
        for reasoning in (True, False):
            col = batch_messages(table, system, reasoning)
            assert col.type == MESSAGES_TYPE
            assert col.to_pylist() == [row_messages(r, system, reasoning) for r in rows]
            # chosen rows, repeated and reordered, as the mixer takes its copies
            picked = [3, 0, 0, 2]
            col = batch_messages(table, system, reasoning, picked)
            assert col.to_pylist() == [row_messages(rows[i], system, reasoning) for i in picked]
    # every row with a target: the targets as they are
    all_targets = pa.Table.from_pylist(rows[:1] * 3)
    assert (
        batch_messages(all_targets, None, True).to_pylist()
        == [row_messages(rows[0], None, True)] * 3
    )


def test_chat_ready_drops_the_none_keys_arrow_adds_and_resolves_the_clip(tmp_path):
    msgs = chat_ready(row_messages(MCQ, "SYS", True), root=tmp_path)
    assert msgs[0]["content"] == [{"type": "text", "text": "SYS"}]
    assert msgs[1]["content"][0] == {
        "type": "video",
        "video": str(tmp_path / "clips/v0001/v0001_0005500.mp4"),
    }
    assert "video" not in msgs[1]["content"][1]


def test_system_prompts_bundled_and_by_path(tmp_path):
    assert "<think>" in load_system_prompt("driving_reasoner")
    assert "dashcam" in load_system_prompt("driving_assistant")
    (tmp_path / "mine.txt").write_text("  Be brief.\n")
    assert load_system_prompt("mine.txt", tmp_path) == "Be brief."
    with pytest.raises(FileNotFoundError, match="driving_assistant"):
        load_system_prompt("nope")


def test_configs_without_question_and_answer_cannot_be_mixed():
    assert missing_columns(["id", "question", "answer", "video"]) == []
    assert missing_columns(["id", "reason", "raw_output", "video"]) == ["question", "answer"]
