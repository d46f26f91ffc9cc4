"""Cosmos-Reason SFT: a `datasets` folder with a `conversations` column of JSON strings.

Out: OUT is a `datasets.Dataset.save_to_disk` folder (what Cosmos-Reason's Hugging Face
post-training example loads with `datasets.load_from_disk`), one row per source row:
`conversations` (a JSON string of OpenAI-style messages: a system turn with string
content when the row has one, the user turn as a list of parts, `{"type": "video",
"video": <path>}` then `{"type": "text", "text": ...}`, and the assistant turn with string
content), plus `id`, `label` and `video`. Clip paths are absolute on this machine, or
under `--clip-root` (where the training machines see the folder). The sampling settings
(fps, max_pixels) are not written: the example's `set_vision_kwargs` adds them to every
video part from its own config at load time.

Schema as read from nvidia-cosmos/cosmos-reason1: `examples/post_training_hf/scripts/
sft.py` (`json.loads(sample[conversation_column_name])`, `set_vision_kwargs`),
`configs/sft.toml` (`conversation_column_name = "conversations"`),
`cosmos_reason1_utils/text.py` (`create_conversation`). Its loader needs torch and
cosmos-rl, so the tests load the folder with `datasets.load_from_disk` and read it as
`sft.py` does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from vlm_autodrive.builders.export.base import (
    ExportResult,
    ExportSource,
    clip_path,
    row_turns,
    write_meta,
)

NAME = "cosmos-reason"
DEFAULT_CONFIG = "mix"
DEFAULT_SPLIT = "train"
COLUMN = "conversations"


def export(source: ExportSource, out: Path, *, clip_root: str | None = None) -> ExportResult:
    """Write `source`'s rows to `out` (see the module docstring)."""
    import pyarrow as pa

    rows = []
    for i, row in enumerate(source.rows):
        conversation = []
        for turn in row_turns(row, f"{source.config}/{source.split} row {i}"):
            if turn.role == "user":
                parts = [
                    {"type": "video", "video": clip_path(source, v, clip_root)} for v in turn.videos
                ]
                content = [*parts, {"type": "text", "text": turn.text}]
                conversation.append({"role": "user", "content": content})
            else:
                conversation.append({"role": turn.role, "content": turn.text})
        rows.append(
            {
                "id": row.get("id"),
                "label": row.get("label"),
                "video": row.get("video"),
                COLUMN: json.dumps(conversation, ensure_ascii=False),
            }
        )
    table = pa.Table.from_pylist(
        rows, schema=pa.schema([(c, pa.string()) for c in ("id", "label", "video", COLUMN)])
    )
    save_dataset(table, out)
    result = ExportResult(
        NAME,
        str(out),
        sorted(p.name for p in out.iterdir()),
        len(rows),
        source.config,
        source.split,
        f"Cosmos-Reason SFT: [custom.dataset] path = {out!s}, "
        f'[train.train_policy] conversation_column_name = "{COLUMN}"',
    )
    write_meta(out, result, source)
    return result


def save_dataset(table, out: Path) -> None:
    """`table` as a `save_to_disk` folder at `out`, replacing what an earlier export left
    there. The fingerprint is the table's content hash, so the same rows give the same
    bytes (a fresh Dataset's fingerprint is random)."""
    import datasets

    refuse_foreign_folder(out)
    digest = hashlib.sha256()
    for batch in table.to_batches():
        for column in batch.columns:
            for value in column.to_pylist():
                digest.update(b"\0" if value is None else value.encode() + b"\1")
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # the command prints its own summary
    try:
        datasets.Dataset(table, fingerprint=digest.hexdigest()[:16]).save_to_disk(str(tmp))
    finally:
        if shown:
            datasets.enable_progress_bars()
    if out.exists():
        shutil.rmtree(out)
    tmp.replace(out)


def refuse_foreign_folder(out: Path) -> None:
    """ValueError unless `out` is absent, empty, or an earlier export of this format (the
    dataset folder replaces it whole, so nothing else may be in it)."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    meta = out / "export.json"
    try:
        earlier = json.loads(meta.read_text()).get("format") if meta.is_file() else None
    except ValueError:
        earlier = None
    if earlier != NAME:
        raise ValueError(
            f"{out}: not empty and not an earlier {NAME} export; the dataset folder replaces "
            "its whole content, so give an empty or new folder"
        )
