"""LLaMA-Factory: sharegpt rows with `<video>` placeholders, and their `dataset_info.json`.

Out, in OUT: `<name>.json`, a JSON list of rows `{"messages": [...], "videos": [...]}`
(system turn first when the row has one, then user and assistant turns whose `content`
is a string; each video part of a user turn becomes a `<video>` placeholder before its
text, and its clip goes into `videos` in the same order), and `dataset_info.json` with
the entry `<name>` (`formatting: sharegpt`, the `messages` and `videos` columns, the
role/content tags). LLaMA-Factory joins each `videos` path to its `media_dir`, which
defaults to `dataset_dir` (OUT): the paths are the clips' paths in the source folder
(`clips/...`) and OUT holds a link `clips` to the source's clip folder. With
`--clip-root`, the paths are absolute under it and no link is made.

Use: `dataset_dir: OUT`, `dataset: <name>` in a LLaMA-Factory training YAML (with a
video-capable `template`, e.g. `qwen2_vl`). Schema as LLaMA-Factory 0.9.5 reads it:
`data/parser.py` (`DatasetAttr`: columns, tags), `data/converter.py`
(`SharegptDatasetConverter`, `_find_medias`), `data/mm_plugin.py` (one `<video>` per
video).
"""

from __future__ import annotations

import os
from pathlib import Path

from vlm_autodrive.builders.export.base import (
    ExportResult,
    ExportSource,
    row_turns,
    write_json,
    write_meta,
)

NAME = "llamafactory"
DEFAULT_CONFIG = "mix"  # the folder's one mix-* config
DEFAULT_SPLIT = "train"
PLACEHOLDER = "<video>"
INFO = "dataset_info.json"
TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}


def export(source: ExportSource, out: Path, *, clip_root: str | None = None) -> ExportResult:
    """Write `source`'s rows to `out` (see the module docstring)."""
    name = dataset_name(source)
    rows = []
    for i, row in enumerate(source.rows):
        messages, videos = [], []
        for turn in row_turns(row, f"{source.config}/{source.split} row {i}"):
            text = PLACEHOLDER * len(turn.videos) + turn.text
            messages.append({"role": turn.role, "content": text})
            videos += [f"{clip_root.rstrip('/')}/{v}" if clip_root else v for v in turn.videos]
        rows.append({"id": row.get("id"), "messages": messages, "videos": videos})
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{name}.json", rows)
    write_json(
        out / INFO,
        {
            name: {
                "file_name": f"{name}.json",
                "formatting": "sharegpt",
                "columns": {"messages": "messages", "videos": "videos"},
                "tags": TAGS,
            }
        },
    )
    links = [] if clip_root else link_clip_folders(source, out, rows)
    result = ExportResult(
        NAME,
        str(out),
        [f"{name}.json", INFO, *links],
        len(rows),
        source.config,
        source.split,
        f"LLaMA-Factory: dataset_dir: {out}, dataset: {name} (media_dir defaults to it)",
    )
    write_meta(out, result, source, dataset_name=name)
    return result


def dataset_name(source: ExportSource) -> str:
    """The dataset's name in dataset_info.json: `<config>_<split>`."""
    return f"{source.config}_{source.split}"


def link_clip_folders(source: ExportSource, out: Path, rows: list[dict]) -> list[str]:
    """Link each top folder the clip paths start with (`clips`) from `out` to the source
    folder's, so the relative paths resolve under `out`; returns the links' names.
    Raises ValueError when `out` holds something else of that name."""
    tops = sorted({v.split("/", 1)[0] for r in rows for v in r["videos"]})
    for top in tops:
        link, target = out / top, source.root / top
        if link.is_symlink():
            if Path(os.readlink(link)) == target:
                continue
            link.unlink()
        elif link.exists():
            raise ValueError(
                f"{link}: exists and is not a link to {target}; export into another folder"
            )
        link.symlink_to(target, target_is_directory=True)
    return tops
