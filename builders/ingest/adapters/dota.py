"""DoTA (Detection of Traffic Anomaly) metadata JSON -> manifest entries.

In: `metadata_{train,val}.json`, `{video_id: {video_start, video_end, anomaly_start,
anomaly_end, anomaly_class, num_frames, subset}}`, where anomaly_start/anomaly_end are
frame indices within the clip, and a `DotaConfig` (`recipes/adapters/dota.yaml`).
Out: an AdapterResult; seconds = index / fps. `anomaly_class` is `"<involvement>:
<category>"` (e.g. `ego: turning`): the involvement part says who crashed (actors from
`involvement`), the category what the counterpart was (`counterparts`). `subset`
(`train`, `val`) is kept as `metadata.source_split`.
DoTA ships frames, not videos: `path_template` names the mp4 the user made of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.ingest.adapters.mapping import (
    AdapterError,
    AdapterResult,
    FrameConfig,
    ResultBuilder,
    RowError,
    check_template,
    frame_seconds,
    render_path,
)
from vlm_autodrive.builders.ingest.records import Actor


class DotaConfig(FrameConfig):
    """dota.yaml: the shared keys plus how a class name becomes actors."""

    adapter: Literal["dota"]
    separator: str = Field(":", min_length=1, description="between involvement and category")
    involvement: dict[str, list[Actor]] = Field(description="involvement part -> actors")
    counterparts: dict[str, Actor | None] = Field(
        description="category part -> the other road user, or null for none/unknown"
    )

    @field_validator("path_template")
    @classmethod
    def _template(cls, v: str) -> str:
        return check_template(v, {"video_id"})


def iter_top_level(text: str) -> Iterator[tuple[str, Any, int]]:
    """(key, value, line) for each member of a top-level JSON object, in file order.

    Unlike `json.loads`, this knows the line of each key (for rejects) and sees
    repeated keys instead of silently keeping the last one.
    """
    dec = json.JSONDecoder()
    ws = " \t\r\n"

    def skip(i: int) -> int:
        while i < len(text) and text[i] in ws:
            i += 1
        return i

    i = skip(0)
    if text[i : i + 1] != "{":
        raise ValueError("top level is not a JSON object")
    i = skip(i + 1)
    if text[i : i + 1] == "}":
        return
    while True:
        line = text.count("\n", 0, i) + 1
        key, i = dec.raw_decode(text, i)
        if not isinstance(key, str):
            raise ValueError(f"line {line}: expected a string key")
        i = skip(i)
        if text[i : i + 1] != ":":
            raise ValueError(f"line {line}: expected ':' after key")
        value, i = dec.raw_decode(text, skip(i + 1))
        yield key, value, line
        i = skip(i)
        if text[i : i + 1] == "}":
            return
        if text[i : i + 1] != ",":
            raise ValueError(f"line {text.count(chr(10), 0, i) + 1}: expected ',' or '}}'")
        i = skip(i + 1)


def _frame(row: dict[str, Any], key: str) -> int:
    v = row.get(key)
    # bool is an int subclass; a true/false here is a malformed row, not frame 1/0
    if not isinstance(v, int) or isinstance(v, bool):
        raise RowError(f"{key} must be an integer frame index, got {v!r}")
    return v


def convert(
    source: Path,
    config: DotaConfig,
    video_root: Path | None = None,
    taxonomy: Taxonomy | None = None,
) -> AdapterResult:
    """Convert a DoTA metadata JSON; rows that cannot be used become rejects."""
    out = ResultBuilder(config, source, taxonomy)
    try:
        members = list(iter_top_level(Path(source).read_text(encoding="utf-8")))
    except (OSError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise AdapterError(f"{source}: cannot read DoTA metadata: {e}") from None
    for video_id, row, line in members:
        out.result.rows += 1
        try:
            _convert_row(out, config, video_id, row, line, video_root)
        except RowError as e:
            out.reject(line, video_id, f"line {line}: {e}")
    return out.finish()


def _convert_row(
    out: ResultBuilder,
    config: DotaConfig,
    video_id: str,
    row: Any,
    line: int,
    video_root: Path | None,
) -> None:
    if not isinstance(row, dict):
        raise RowError(f"expected an object, got {type(row).__name__}")
    raw_class = row.get("anomaly_class")
    if not isinstance(raw_class, str) or not raw_class.strip():
        raise RowError(f"anomaly_class must be a non-empty string, got {raw_class!r}")
    label = out.label(raw_class, line)
    if label is None:
        return
    start, end, n = (_frame(row, k) for k in ("anomaly_start", "anomaly_end", "num_frames"))
    # anomaly_end == num_frames occurs in the real files (the anomaly runs to the end of
    # the clip), so the end may be one past the last index, but no further.
    if not 0 <= start <= end <= n:
        raise RowError(
            f"need 0 <= anomaly_start <= anomaly_end <= num_frames, got {start}, {end}, {n}"
        )
    who, sep, category = raw_class.partition(config.separator)
    who, category = who.strip(), category.strip()
    if not sep or who not in config.involvement:
        raise RowError(f"anomaly_class {raw_class!r}: involvement {who!r} is not in involvement")
    if category not in config.counterparts:
        raise RowError(f"anomaly_class {raw_class!r}: category {category!r} is not in counterparts")
    subset = row.get("subset")
    if subset is not None and not isinstance(subset, str):
        raise RowError(f"subset must be a string such as 'train' or 'val', got {subset!r}")
    actors = list(config.involvement[who])
    counterpart = config.counterparts[category]
    if counterpart is not None:
        actors.append(counterpart)
    out.add(
        line,
        video_id,
        render_path(config.path_template, video_root, video_id=video_id),
        label,
        frame_seconds(start, end, config.fps, config.event_time),
        raw_class,
        actors,
        source_split=(subset or "").strip() or None,
    )
