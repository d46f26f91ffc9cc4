"""Nexar collision prediction split -> manifest entries.

In: a split's `metadata.csv` (or the split folder holding it) with the columns
`file_name,time_of_event,time_of_alert,light_conditions,weather,scene,time_to_accident`,
the split folder whose sub-folders hold the videos by class (`positive/`, `negative/`),
and a `NexarConfig` (`recipes/adapters/nexar.yaml`).
Out: an AdapterResult. The sub-folder a row's file lies in is its source label (mapped
through `labels`); video_id = the file's stem; event_time = time_of_event in seconds.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import Field

from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.ingest.adapters.mapping import (
    AdapterConfig,
    AdapterError,
    AdapterResult,
    ResultBuilder,
    RowError,
)

REQUIRED_COLUMNS = ("file_name", "time_of_event", "light_conditions", "weather", "scene")


class NexarConfig(AdapterConfig):
    """nexar.yaml: the shared keys; `labels` keys are the split's sub-folder names."""

    adapter: Literal["nexar"]
    metadata_name: str = Field("metadata.csv", description="CSV name when given a folder")


def index_folders(root: Path) -> dict[str, list[str]]:
    """File name -> the sub-folders of `root` that hold a file of that name."""
    where: dict[str, list[str]] = defaultdict(list)
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sub.iterdir():
            if f.is_file():
                where[f.name].append(sub.name)
    return dict(where)


def _seconds(raw: str | None, column: str) -> float | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise RowError(f"{column} {raw!r} is not a number of seconds")
    return value


def convert(
    source: Path,
    config: NexarConfig,
    video_root: Path | None = None,
    taxonomy: Taxonomy | None = None,
) -> AdapterResult:
    """Convert one Nexar split.

    `source` is the metadata CSV or its folder; `video_root` is the folder whose
    sub-folders hold the videos (default: the CSV's folder). Entry paths are
    `video_root/<sub-folder>/<file>` as given (relative stays relative).
    """
    source = Path(source)
    csv_path = source / config.metadata_name if source.is_dir() else source
    root = video_root if video_root is not None else csv_path.parent
    out = ResultBuilder(config, csv_path, taxonomy)
    try:
        where = index_folders(root)
        with csv_path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise AdapterError(f"{csv_path}: missing columns {missing}")
            for row in reader:
                out.result.rows += 1
                line = reader.line_num
                try:
                    _convert_row(out, row, line, root, where)
                except RowError as e:
                    name = (row.get("file_name") or "").strip()
                    vid = PurePosixPath(name.replace("\\", "/")).stem or None
                    out.reject(line, vid, f"line {line}: {e}")
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise AdapterError(f"{csv_path}: cannot read the Nexar split: {e}") from None
    return out.result


def _convert_row(
    out: ResultBuilder,
    row: dict[str | None, str | None],
    line: int,
    root: Path,
    where: dict[str, list[str]],
) -> None:
    # DictReader puts surplus fields under None and fills short rows with None
    if None in row or None in row.values():
        got = sum(v is not None for k, v in row.items() if k is not None)
        got += len(row.get(None) or [])
        raise RowError(f"{got} fields, but the header has {len(row) - (None in row)}")
    file_name = (row["file_name"] or "").strip().replace("\\", "/")
    if not file_name:
        raise RowError("empty file_name")
    rel = PurePosixPath(file_name)
    folders = where.get(rel.name, [])
    if len(rel.parts) > 1:  # `positive/00061.mp4`: the CSV names the folder itself
        folders = [f for f in folders if f == rel.parts[-2]]
    if not folders:
        raise RowError(f"file {file_name!r} is in no sub-folder of {root}")
    if len(folders) > 1:
        raise RowError(f"file {file_name!r} is in several sub-folders: {folders}")
    label = out.label(folders[0], line)
    if label is None:
        return
    moment = _seconds(row["time_of_event"], "time_of_event")
    out.add(
        line,
        rel.stem,
        str(root / folders[0] / rel.name),
        label,
        None if moment is None else (moment, moment, moment),
        folders[0],
        light=out.value("light", row["light_conditions"]),
        weather=out.value("weather", row["weather"]),
        scene=out.value("scene", row["scene"]),
    )
