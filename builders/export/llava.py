"""LLaVA-style JSON, as Qwen-VL's finetune scripts (qwen-vl-finetune) read it.

Out: `OUT/<config>_<split>.json`, a JSON list of `{"id", "video", "conversations":
[{"from": "human", "value": "<video>\\n<question>"}, {"from": "gpt", "value": <answer>}]}`.
`video` is the clip's path relative to the source folder: register the file with
`{"annotation_path": OUT/<name>.json, "data_path": <source folder>}` in
`qwenvl/data/__init__.py` (the script joins `data_path` and `video`). With `--clip-root`,
`data_path` is that root instead (where the training machines see the folder).

The format has no system turn (every turn that is not `human` is read as the
assistant's), so a row's system prompt is left out; `export.json` says so. Schema as read
from QwenLM/Qwen2.5-VL `qwen-vl-finetune/qwenvl/data/data_processor.py`
(`LazySupervisedDataset`, `_build_messages`: `<video>` placeholders split the human
text, one per entry of `video`, none left over). That script needs torch and its own
repository, so the tests check those rules on the written file.
"""

from __future__ import annotations

from pathlib import Path

from vlm_autodrive.builders.export.base import (
    ExportResult,
    ExportSource,
    refuse_overwriting,
    row_turns,
    write_json,
    write_meta,
)

NAME = "llava"
DEFAULT_CONFIG = "mix"
DEFAULT_SPLIT = "train"
PLACEHOLDER = "<video>"
FROM = {"user": "human", "assistant": "gpt"}


def export(source: ExportSource, out: Path, *, clip_root: str | None = None) -> ExportResult:
    """Write `source`'s rows to `out` (see the module docstring)."""
    name = f"{source.config}_{source.split}"
    rows, systems_dropped = [], 0
    for i, row in enumerate(source.rows):
        where = f"{source.config}/{source.split} row {i}"
        conversations, videos = [], []
        for turn in row_turns(row, where):
            if turn.role == "system":
                systems_dropped += 1
                continue
            if turn.role not in FROM:
                raise ValueError(f"{where}: role {turn.role!r} has no LLaVA form")
            prefix = "".join(f"{PLACEHOLDER}\n" for _ in turn.videos)
            conversations.append({"from": FROM[turn.role], "value": prefix + turn.text})
            videos += turn.videos
        entry = {"id": row.get("id") or f"{name}-{i}", "conversations": conversations}
        if videos:
            entry["video"] = videos[0] if len(videos) == 1 else videos
        rows.append(entry)
    refuse_overwriting(out, NAME, [f"{name}.json"])
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{name}.json", rows)
    data_path = clip_root or str(source.root)
    notes = []
    if systems_dropped:
        notes.append(
            f"{systems_dropped} system turn(s) left out: the LLaVA format has none "
            "(set the system prompt in the training script's chat template if wanted)"
        )
    result = ExportResult(
        NAME,
        str(out),
        [f"{name}.json"],
        len(rows),
        source.config,
        source.split,
        f'Qwen-VL finetune: {{"annotation_path": "{out / (name + ".json")}", '
        f'"data_path": "{data_path}"}} in qwenvl/data/__init__.py',
        notes,
    )
    write_meta(out, result, source, data_path=data_path)
    return result
