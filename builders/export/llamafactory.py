"""LLaMA-Factory: sharegpt rows with `<video>` placeholders, and their `dataset_info.json`.

Out, in OUT: `<name>.json`, a JSON list of rows `{"messages": [...], "videos": [...]}`
(system turn first when the row has one, then user and assistant turns whose `content`
is a string; each video part of a user turn becomes a `<video>` placeholder before its
text, and its clip goes into `videos` in the same order), and `dataset_info.json` with
the entry `<name>` (`formatting: sharegpt`, the `messages` and `videos` columns, the
role/content tags). The file is LLaMA-Factory's registry of every dataset of its
`dataset_dir`, so an existing one is merged, not replaced: its other entries (the user's
own, other configs exported here) are kept, this config's is set; an entry of that name
for another file, or a `<name>.json` the registry does not list, refuses the export.

LLaMA-Factory joins each `videos` path to its `media_dir`, which defaults to
`dataset_dir` (OUT): the paths are the clips' paths in the source folder (`clips/...`)
and OUT holds a link `clips` to the source's clip folder. With `--clip-root`, the paths
are absolute under it and no link is made. Every check (the registry, the link) comes
before the first write: a refused export leaves OUT as it was.

Use: `dataset_dir: OUT`, `dataset: <name>` in a LLaMA-Factory training YAML (with a
video-capable `template`, e.g. `qwen2_vl`). Schema as LLaMA-Factory 0.9.5 reads it:
`data/parser.py` (`DatasetAttr`: columns, tags), `data/converter.py`
(`SharegptDatasetConverter`, `_find_medias`), `data/mm_plugin.py` (one `<video>` per
video).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vlm_autodrive.builders.core.errors import InputError, require_folder_path
from vlm_autodrive.builders.core.strict import read_text_file
from vlm_autodrive.builders.export.base import (
    ExportResult,
    ExportSource,
    refuse_overwriting,
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
    """Write `source`'s rows to `out` (see the module docstring). Everything that could
    refuse the export is checked before the first file is written: a refused export
    leaves `out` as it was."""
    name = dataset_name(source)
    rows = []
    for i, row in enumerate(source.rows):
        messages, videos = [], []
        for turn in row_turns(row, f"{source.config}/{source.split} row {i}"):
            text = PLACEHOLDER * len(turn.videos) + turn.text
            messages.append({"role": turn.role, "content": text})
            videos += [f"{clip_root.rstrip('/')}/{v}" if clip_root else v for v in turn.videos]
        rows.append({"id": row.get("id"), "messages": messages, "videos": videos})
    require_folder_path(out, "the export folder")
    refuse_overwriting(out, NAME, [])  # another format's export.json; the rest below
    registry = merged_registry(out, name)
    links = [] if clip_root else planned_links(source, out, rows, registry, name)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{name}.json", rows)
    write_json(out / INFO, registry)
    for link, target in links:
        if link.is_symlink():
            link.unlink()
        link.symlink_to(target, target_is_directory=True)
    tops = sorted({v.split("/", 1)[0] for r in rows for v in r["videos"]}) if not clip_root else []
    others = [k for k in registry if k != name]
    result = ExportResult(
        NAME,
        str(out),
        [f"{name}.json", INFO, *tops],
        len(rows),
        source.config,
        source.split,
        f"LLaMA-Factory: dataset_dir: {out}, dataset: {name} (media_dir defaults to it)",
        [f"{INFO} keeps its other entries: {', '.join(others)}"] if others else [],
    )
    write_meta(out, result, source, dataset_name=name)
    return result


def dataset_name(source: ExportSource) -> str:
    """The dataset's name in dataset_info.json: `<config>_<split>`."""
    return f"{source.config}_{source.split}"


def entry(name: str) -> dict:
    """This export's entry in dataset_info.json."""
    return {
        "file_name": f"{name}.json",
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "videos": "videos"},
        "tags": TAGS,
    }


def merged_registry(out: Path, name: str) -> dict:
    """`out`'s dataset_info.json with the entry `name` set to this export's, every other
    entry kept in its place: the file is LLaMA-Factory's registry of the datasets of its
    `dataset_dir`, which may hold the user's own and other configs' exports. InputError
    (nothing written) when the file is no JSON mapping, when its `name` entry is another
    dataset (another `file_name`), or when `<name>.json` is there without the entry (a
    file this export would overwrite without knowing whose it is)."""
    path, data_file = out / INFO, out / f"{name}.json"
    registry: dict = {}
    if path.exists():
        text = read_text_file(path, "LLaMA-Factory's dataset_info.json")
        try:
            registry = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(path, f"not valid JSON: {e.msg}", e.lineno) from None
        if not isinstance(registry, dict):
            raise InputError(path, "not a mapping of dataset name -> entry (LLaMA-Factory's)")
    earlier = registry.get(name)
    if earlier is not None and (
        not isinstance(earlier, dict) or earlier.get("file_name") != data_file.name
    ):
        raise InputError(
            path,
            f"names another dataset (file_name {_file_name(earlier)!r}, not {data_file.name!r}); "
            "export into another folder, or rename that entry",
            name,
        )
    if earlier is None and (data_file.exists() or data_file.is_symlink()):
        raise InputError(
            data_file,
            f"exists and {INFO} has no entry {name!r} for it: not an earlier export of this "
            "config; export into another folder, or remove the file",
        )
    for other, value in registry.items():
        if other != name and _file_name(value) == data_file.name:
            raise InputError(
                path,
                f"reads {data_file.name} as its data, which this export would replace; "
                "export into another folder",
                other,
            )
    return {**registry, name: entry(name)}


def _file_name(value: object) -> object:
    return value.get("file_name") if isinstance(value, dict) else None


def planned_links(
    source: ExportSource, out: Path, rows: list[dict], registry: dict, name: str
) -> list[tuple[Path, Path]]:
    """The links (link, target) to make so that each top folder the clip paths start with
    (`clips`) resolves under `out` to the source folder's; one already right is left out.
    ValueError (nothing written) when `out` holds something else of that name, or a link
    to another folder that the registry's other datasets may read their clips through
    (re-pointing it would give them another build's clips)."""
    tops = sorted({v.split("/", 1)[0] for r in rows for v in r["videos"]})
    others = [k for k in registry if k != name]
    links = []
    for top in tops:
        link, target = out / top, source.root / top
        if link.is_symlink():
            if Path(os.readlink(link)) == target:
                continue
            if others:
                raise ValueError(
                    f"{link}: a link to {os.readlink(link)}, not {target}; the other datasets "
                    f"of {out / INFO} ({', '.join(others)}) may read their clips through it: "
                    "export this source into another folder"
                )
        elif link.exists():
            raise ValueError(
                f"{link}: exists and is not a link to {target}; export into another folder"
            )
        links.append((link, target))
    return links
