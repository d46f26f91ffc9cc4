"""What every exporter shares: the source folder, the rows of one config, their turns.

In: a source, which is a build folder, a release folder (`autodrive publish --to`), or a
Hub dataset `owner/name[@revision]` (downloaded into the Hugging Face cache with its
config's Parquet files and the clips those rows use); a config and a split. Out: an
`ExportSource` (the folder the clip paths are relative to, the config's rows) and, per
row, its conversation as plain `Turn`s: role, text and the clip paths its video parts
name, in order.

A row is a conversation either as `autodrive mix` writes it (`messages`) or, for any
config with `question`, `answer` and `video` columns (`mcq`, `caption_metadata`, ...),
as the mixer would write it without a system prompt (builders/mix/conversations.py),
with the reasoning form when the row has reasoning. Every row is exported: a row whose
clip is missing, or that is no conversation, stops the export with a message naming it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HUB_SPEC = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")
META = "export.json"


@dataclass(frozen=True)
class Turn:
    """One turn: `role` (system, user or assistant), its text parts joined by newlines,
    and the clips of its video parts (paths relative to the source folder), in order."""

    role: str
    text: str
    videos: tuple[str, ...] = ()


@dataclass
class ExportSource:
    """The rows of one config and split, and the folder their clip paths are relative to.
    `spec` is the source as given; `revision` the Hub commit (None for a folder)."""

    spec: str
    root: Path
    config: str
    split: str
    rows: list[dict[str, Any]]
    revision: str | None = None


@dataclass
class ExportResult:
    """What an export wrote: the format, the output folder, the files in it, rows written
    (all of the config's split: nothing is dropped) and a line telling how to use it."""

    format: str
    out: str
    files: list[str]
    rows: int
    config: str
    split: str
    usage: str
    notes: list[str] = field(default_factory=list)


def open_source(spec: str | Path, config: str, split: str) -> ExportSource:
    """The rows of `config`/`split` of a folder or a Hub dataset `owner/name[@rev]`.
    Raises ValueError / FileNotFoundError naming what is missing."""
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{spec}: a source is a folder (or a Hub id owner/name[@rev])")
        return ExportSource(
            str(spec), path.resolve(), config, split, read_rows(path, config, split)
        )
    m = HUB_SPEC.match(str(spec))
    if not m:
        raise FileNotFoundError(f"{spec}: no such folder, and not a Hub id owner/name[@rev]")
    root = _hub_snapshot(m["repo"], m["rev"], [f"data/{config}/{split}-*.parquet"])
    rows = read_rows(root, config, split)
    _hub_snapshot(m["repo"], m["rev"], sorted({v for r in rows for v in row_videos(r)}))
    return ExportSource(str(spec), root, config, split, rows, revision=root.name)


def _hub_snapshot(repo: str, revision: str | None, patterns: list[str]) -> Path:
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(
            repo,
            repo_type="dataset",
            revision=revision,
            allow_patterns=[*patterns, "README.md", "provenance.json"],
        )
    )


def read_rows(root: Path, config: str, split: str) -> list[dict[str, Any]]:
    """The rows of the file the folder declares for `config`/`split` (its provenance.json,
    else its one `data/<config>/<split>-*.parquet`)."""
    import pyarrow.parquet as pq

    from vlm_autodrive.builders.dataset.folder import all_data_files, data_files

    files = data_files(root, config, split)
    if split not in files:
        have = all_data_files(root)
        if config not in have:
            raise FileNotFoundError(
                f"{root}: no config {config!r} (configs here: {', '.join(sorted(have)) or 'none'})"
            )
        raise FileNotFoundError(
            f"{root}: config {config!r} has no {split!r} split "
            f"(splits: {', '.join(sorted(have[config]))})"
        )
    return pq.read_table(root / files[split]).to_pylist()


def mix_configs(root: Path) -> list[str]:
    """The `mix-*` configs of a folder (local; a Hub source names its config)."""
    from vlm_autodrive.builders.dataset.folder import all_data_files

    return sorted(c for c in all_data_files(root) if c.startswith("mix-"))


def row_turns(row: Mapping[str, Any], where: str) -> list[Turn]:
    """The conversation of one row as Turns (see the module docstring). Raises ValueError
    naming `where` (the row) when it is no conversation."""
    messages = row.get("messages")
    if messages is None:
        from vlm_autodrive.builders.mix.conversations import (
            has_reasoning,
            missing_columns,
            row_messages,
        )

        missing = missing_columns(list(row))
        if missing:
            raise ValueError(
                f"{where}: no `messages` column and no {missing}: not a conversation config "
                "(export a mix-* config, or one with question, answer and video)"
            )
        messages = row_messages(row, None, has_reasoning(list(row)))
    turns = []
    for m in messages:
        content = m["content"]
        if isinstance(content, str):
            turns.append(Turn(m["role"], content))
            continue
        texts = [p["text"] for p in content if p.get("type") == "text" and p.get("text")]
        videos = tuple(p["video"] for p in content if p.get("type") == "video")
        turns.append(Turn(m["role"], "\n".join(texts), videos))
    if not turns or turns[-1].role != "assistant":
        raise ValueError(f"{where}: the conversation does not end with an assistant turn")
    return turns


def row_videos(row: Mapping[str, Any]) -> list[str]:
    """The clips a row's conversation names (its `video` column for a plain config)."""
    messages = row.get("messages")
    if messages is None:
        return [row["video"]] if row.get("video") else []
    return [
        p["video"]
        for m in messages
        if not isinstance(m["content"], str)
        for p in m["content"]
        if p.get("type") == "video" and p.get("video")
    ]


def check_clips(source: ExportSource) -> int:
    """Raise FileNotFoundError naming the first missing clips of the rows; returns how
    many distinct clips the rows use."""
    clips = sorted({v for r in source.rows for v in row_videos(r)})
    missing = [c for c in clips if not (source.root / c).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{source.root}: {len(missing)} clip(s) the {source.config!r} rows use are missing, "
            f"e.g. {missing[:3]}"
        )
    return len(clips)


def clip_path(source: ExportSource, clip: str, clip_root: str | None) -> str:
    """Where the consumer opens a clip: under `clip_root` when given (the folder as the
    training machines mount it), else the absolute path on this machine."""
    if clip_root:
        return f"{clip_root.rstrip('/')}/{clip}"
    return str(source.root / clip)


def refuse_overwriting(out: Path, fmt: str, names: list[str]) -> None:
    """ValueError, before anything is written, when `out` holds one of `names` (files this
    export writes) or an `export.json` and is not an earlier export of format `fmt`: the
    file may be the user's, or another format's export (llava and llamafactory both
    write `<config>_<split>.json`). An earlier export of `fmt` is replaced file by file."""
    meta = out / META
    if meta.is_file():
        try:
            earlier = json.loads(meta.read_text(encoding="utf-8")).get("format")
        except (ValueError, AttributeError):
            earlier = None
        if earlier == fmt:
            return
        what = f"an export of {earlier}" if isinstance(earlier, str) else "not an export"
        raise ValueError(f"{meta}: {out} is {what}, not {fmt}; export into another folder")
    for name in names:
        if (out / name).exists() or (out / name).is_symlink():
            raise ValueError(
                f"{out / name}: exists, and {out} is not an earlier {fmt} export (no "
                f"{META}); export into another folder, or remove the file"
            )


def write_meta(out: Path, result: ExportResult, source: ExportSource, **extra: Any) -> None:
    """`OUT/export.json`: what was exported from where, for whoever finds the folder."""
    meta = {
        **asdict(result),
        "source": source.spec,
        "revision": source.revision,
        "source_root": str(source.root),
        **extra,
    }
    (out / META).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")


def write_json(path: Path, data: Any) -> None:
    """A JSON file written whole or not at all (same data, same bytes)."""
    from vlm_autodrive.builders.core.files import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
