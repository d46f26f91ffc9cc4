"""Rows of any question/answer config -> `messages`, the conversational format of TRL.

In: a row (or a record batch) of a config that has `question` and `answer` columns, and
optionally `reasoning` (the think text) and `target` (the whole Cosmos-Reason1 answer),
plus the common `video` column. Out: `messages`, a list of turns
`{"role", "content": [{"type", "text", "video"}, ...]}`:

- `system`: the system prompt the mixture recipe names (left out when it names none);
- `user`: a video part referencing the clip by its path relative to the dataset folder
  (`{"type": "video", "video": "clips/v0001/v0001_0005500.mp4"}`), then a text part with
  the question (which already lists any lettered options, as the rule splits write it);
- `assistant`: the answer; for a reasoning row with reasoning on, the Cosmos-Reason1 form
  `<think>\\n...\\n</think>\\n\\n<answer>\\nX\\n</answer>` (its `target` when it has one, else
  composed from `reasoning` and `answer`).

Nothing here is per config: a config joins the mixture by having these columns. Content
parts are Arrow structs, so every part has all three keys and `datasets` gives the absent
ones as None; `chat_ready` drops them before a chat template sees the parts (Qwen2-VL's
template tests `'video' in part`, which a None-valued key would satisfy).

`row_messages` is the reference (one row, Python); `batch_messages` builds the same
column for a whole record batch with Arrow kernels, which is what the mixer uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vlm_autodrive.builders.core.strict import read_text_file
from vlm_autodrive.resources import bundled

REQUIRED = ("question", "answer", "video")
THINK_OPEN, THINK_CLOSE = "<think>\n", "\n</think>\n\n<answer>\n"
ANSWER_CLOSE = "\n</answer>"

PART_TYPE = pa.struct([("type", pa.string()), ("text", pa.string()), ("video", pa.string())])
TURN_TYPE = pa.struct([("role", pa.string()), ("content", pa.list_(PART_TYPE))])
MESSAGES_TYPE = pa.list_(TURN_TYPE)


def reasoning_form(reasoning: str, answer: str) -> str:
    """The Cosmos-Reason1 assistant text: the think block, a blank line, the answer block."""
    return f"{THINK_OPEN}{reasoning.strip()}{THINK_CLOSE}{answer.strip()}{ANSWER_CLOSE}"


def has_reasoning(columns: Sequence[str]) -> bool:
    """Whether a config's rows can be answered in the reasoning form."""
    return "target" in columns or "reasoning" in columns


def missing_columns(columns: Sequence[str]) -> list[str]:
    """The columns a config lacks to become conversations (empty when it can)."""
    return [c for c in REQUIRED if c not in columns]


def assistant_text(row: Mapping[str, Any], reasoning: bool) -> str:
    """The assistant turn of one row (see the module docstring)."""
    if reasoning and row.get("target"):
        return row["target"]
    if reasoning and row.get("reasoning"):
        return reasoning_form(row["reasoning"], row["answer"])
    return row["answer"]


def row_messages(row: Mapping[str, Any], system: str | None, reasoning: bool) -> list[dict]:
    """`messages` of one row, with every part carrying all three keys (as Arrow stores it)."""

    def part(type_: str, text: str | None = None, video: str | None = None) -> dict:
        return {"type": type_, "text": text, "video": video}

    turns = []
    if system is not None:
        turns.append({"role": "system", "content": [part("text", system)]})
    user = [part("video", video=row["video"]), part("text", row["question"])]
    turns.append({"role": "user", "content": user})
    turns.append({"role": "assistant", "content": [part("text", assistant_text(row, reasoning))]})
    return turns


def batch_assistant_text(batch: pa.RecordBatch | pa.Table, reasoning: bool) -> pa.Array:
    """`assistant_text` for every row of a batch, with Arrow kernels."""
    answer = _column(batch, "answer")
    if not reasoning:
        return answer
    names = batch.schema.names
    if "target" in names:
        target = _column(batch, "target")
        has_target = pc.fill_null(pc.greater(pc.utf8_length(target), 0), False)
        if pc.all(has_target).as_py():  # the usual case: nothing to compose
            return target
    out = answer
    if "reasoning" in names:
        think = _column(batch, "reasoning")
        composed = pc.binary_join_element_wise(
            THINK_OPEN, pc.utf8_trim_whitespace(think), THINK_CLOSE,
            pc.utf8_trim_whitespace(answer), ANSWER_CLOSE, "",
        )  # fmt: skip
        has_think = pc.fill_null(pc.greater(pc.utf8_length(think), 0), False)
        out = pc.if_else(has_think, composed, out)
    if "target" in names:
        out = pc.if_else(has_target, target, out)
    return out


def batch_messages(
    batch: pa.RecordBatch | pa.Table,
    system: str | None,
    reasoning: bool,
    rows: np.ndarray | None = None,
) -> pa.ListArray:
    """The `messages` column of a batch: the same values as `row_messages` row by row.

    `rows` (integer positions in `batch`, repeats allowed) gives the messages of those
    rows in that order, as `batch_messages(batch, ...).take(rows)` would, without
    building and then copying the nested column: every string goes into place once.
    """
    src_rows = np.arange(batch.num_rows) if rows is None else np.asarray(rows, np.int64)
    n = len(src_rows)
    question, video = _column(batch, "question"), _column(batch, "video")
    answer = batch_assistant_text(batch, reasoning)
    # One values array per part field, each ending with one null; a part's text (or
    # video) is an index into it, so each child column is a single `take`.
    texts = [question, answer] if system is None else [pa.array([system]), question, answer]
    text_values = pa.concat_arrays([*texts, pa.nulls(1, pa.string())])
    video_values = pa.concat_arrays([video, pa.nulls(1, pa.string())])
    text_null, video_null = len(text_values) - 1, len(video_values) - 1
    q_at = 0 if system is None else 1  # where `question` starts in text_values
    a_at = q_at + batch.num_rows
    # Parts per row, in order: [system], video, question, answer (one column each).
    slots: list[tuple[str, np.ndarray | int, np.ndarray | int]] = []  # type, text, video
    roles, parts_per_turn = [], []
    if system is not None:
        slots.append(("text", 0, video_null))
        roles.append("system")
        parts_per_turn.append(1)
    slots += [
        ("video", text_null, src_rows),
        ("text", q_at + src_rows, video_null),
        ("text", a_at + src_rows, video_null),
    ]
    roles += ["user", "assistant"]
    parts_per_turn += [2, 1]
    text = text_values.take(_row_major([s[1] for s in slots], n))
    vid = video_values.take(_row_major([s[2] for s in slots], n))
    part_types = ["text", "video"]
    types = pa.array(part_types).take(_row_major([part_types.index(s[0]) for s in slots], n))
    parts = pa.StructArray.from_arrays([types, text, vid], fields=list(PART_TYPE))
    per_turn = np.tile(np.array(parts_per_turn, dtype=np.int32), n)
    offsets = np.concatenate([[0], np.cumsum(per_turn)]).astype(np.int32)
    content = pa.ListArray.from_arrays(pa.array(offsets), parts, type=pa.list_(PART_TYPE))
    role_names = pa.array(roles).take(_row_major(list(range(len(roles))), n))
    turns = pa.StructArray.from_arrays([role_names, content], fields=list(TURN_TYPE))
    t = len(roles)
    turn_offsets = pa.array(np.arange(0, t * n + 1, t, dtype=np.int32))
    return pa.ListArray.from_arrays(turn_offsets, turns, type=MESSAGES_TYPE)


def _row_major(slots: list[np.ndarray | int], n: int) -> pa.Array:
    """Indices of `n` rows' slots, row by row: row 0's slot 0, 1, ..., then row 1's. Each
    slot is an index per row or one index for every row."""
    out = np.empty((n, len(slots)), np.int64)
    for j, s in enumerate(slots):
        out[:, j] = s
    return pa.array(out.ravel())


def chat_ready(messages: list[dict], root: str | Path | None = None) -> list[dict]:
    """Messages as `datasets` returns them -> what `processor.apply_chat_template` expects.

    Drops None-valued keys of every part; with `root` (the dataset folder), turns the
    clip's relative path into an absolute one so the processor can open it.
    """
    out = []
    for turn in messages:
        content = []
        for part in turn["content"]:
            p = {k: v for k, v in part.items() if v is not None}
            if root is not None and p.get("type") == "video":
                p["video"] = str(Path(root) / p["video"])
            content.append(p)
        out.append({"role": turn["role"], "content": content})
    return out


def system_prompt_path(name: str, base: Path | None = None) -> Path:
    """A system prompt named in a recipe: a file path (relative to `base`, the recipe's
    folder), or the name of a bundled one, `prompts/system/<name>.txt`."""
    p = Path(name)
    if p.suffix or len(p.parts) > 1:
        return p if p.is_absolute() or base is None else base / p
    return bundled("prompts", f"system/{name}.txt")


def load_system_prompt(name: str, base: Path | None = None) -> str:
    """The text of a system prompt (ends stripped); FileNotFoundError names what was tried."""
    path = system_prompt_path(name, base)
    if not path.is_file():
        bundled_names = sorted(p.stem for p in bundled("prompts", "system").glob("*.txt"))
        raise FileNotFoundError(
            f"system prompt {name!r} not found ({path}); bundled ones: {', '.join(bundled_names)}"
        )
    text = read_text_file(path, "system prompt").strip()  # not UTF-8: file and line named
    if not text:
        raise ValueError(f"system prompt {name!r} ({path}) is empty")
    return text


def _column(batch: pa.RecordBatch | pa.Table, name: str) -> pa.Array:
    col = batch.column(name)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return col.cast(pa.string()) if col.type != pa.string() else col
