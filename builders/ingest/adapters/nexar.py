"""Nexar collision prediction -> manifest entries.

In: the dataset as it is published on the Hub: one `metadata.csv` per class folder,
`<split>/<class>/metadata.csv` (`train/positive/`, `train/negative/`,
`test-public/positive/`, ...), columns `file_name,time_of_event,time_of_alert,
light_conditions,weather,scene,time_to_accident`, each `file_name` (`00000.mp4`) relative
to its CSV's folder, `time_of_event` in seconds, empty for negatives. `source` is the
dataset's root folder (every split), a split folder, a class folder, or one CSV. Also the
Kaggle competition's `train.csv` (`id,time_of_alert,time_of_event,target`, the videos in
`train/<id>.mp4` beside it), given as the file. And a `NexarConfig`
(`recipes/adapters/nexar.yaml`).
Out: an AdapterResult with positives and negatives of every split read. The class folder's
name is the row's source label (Kaggle: `target` through `targets`), mapped through
`labels`; video_id = `id_template` of split, class folder and file stem (unique across
splits: `train-positive-00000`); metadata.source_split = the split folder's name;
event_time = time_of_event.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import Field, field_validator

from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.ingest.adapters.mapping import (
    AdapterConfig,
    AdapterError,
    AdapterResult,
    ResultBuilder,
    RowError,
    check_template,
)

HUB_COLUMNS = ("file_name", "time_of_event", "light_conditions", "weather", "scene")
KAGGLE_COLUMNS = ("id", "time_of_event", "target")


class NexarConfig(AdapterConfig):
    """nexar.yaml: the shared keys; `labels` keys are class folder names."""

    adapter: Literal["nexar"]
    metadata_name: str = Field("metadata.csv", description="the CSV name searched for")
    id_template: str = Field(
        "{split}-{folder}-{stem}", description="video_id from split, class folder, file stem"
    )
    targets: dict[str, str] = Field(
        default_factory=lambda: {"1": "positive", "0": "negative"},
        description="Kaggle train.csv: `target` value -> the label key it stands for",
    )
    kaggle_id_digits: int = Field(5, ge=1, description="Kaggle ids are zero-padded to this")

    @field_validator("id_template")
    @classmethod
    def _template(cls, v: str) -> str:
        return check_template(v, {"split", "folder", "stem"})


def find_csvs(source: Path, name: str) -> list[Path]:
    """The CSVs to read: `source` itself, or every `name` below the folder `source`
    (hidden folders such as download caches skipped), in path order."""
    if not source.is_dir():
        if not source.is_file():
            raise AdapterError(f"{source}: no such file or folder")
        return [source]
    found = sorted(
        p
        for p in source.rglob(name)
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(source).parts)
    )
    if not found:
        kaggle = (source / "train.csv").exists()
        hint = " (for Kaggle's layout, pass its train.csv itself)" if kaggle else ""
        raise AdapterError(f"{source}: no {name} in it or below it{hint}")
    return found


def _seconds(raw: str | None, column: str) -> float | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise RowError(f"{column} {raw!r} is not a number of seconds") from None
    if math.isnan(value):
        # pandas writes a missing value as NaN: say so, not "not a number of seconds"
        raise RowError(
            f"{column} is {raw!r} (a missing value): leave it empty for a video without "
            "an event, or give the event's time in seconds"
        )
    if not math.isfinite(value):
        raise RowError(f"{column} {raw!r} is not a number of seconds")
    return value


def convert(
    source: Path,
    config: NexarConfig,
    video_root: Path | None = None,
    taxonomy: Taxonomy | None = None,
) -> AdapterResult:
    """Convert every Nexar CSV at or below `source`; unusable rows become rejects.

    `video_root` stands for the source's folder (`source` itself, or the folder of the
    CSV given): paths are `video_root/<CSV folder relative to it>/<file_name>`, as
    written. Default: the source's folder. Relative ones are relative to the working
    folder (`paths_from` of the result), and `write_manifest` rewrites them relative to
    the manifest's folder, where ingest resolves them.
    """
    source = Path(source)
    base = source if source.is_dir() else source.parent
    csvs = find_csvs(source, config.metadata_name)
    out = ResultBuilder(config, source, taxonomy)
    top = video_root if video_root is not None else base
    if not top.is_absolute():
        out.result.paths_from = Path.cwd()
    for csv_path in csvs:
        root = top / csv_path.parent.relative_to(base)
        _convert_csv(out, config, csv_path, root)
        out.result.notes["csv files read"] += 1
    return out.finish()


def _convert_csv(out: ResultBuilder, config: NexarConfig, csv_path: Path, root: Path) -> None:
    try:
        # utf-8-sig: a CSV saved by Excel starts with a byte order mark, which would
        # otherwise become part of the first column's name
        with csv_path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            kaggle = "target" in header and "file_name" not in header
            need = KAGGLE_COLUMNS if kaggle else HUB_COLUMNS
            missing = [c for c in need if c not in header]
            if missing:
                raise AdapterError(f"{csv_path}: missing columns {missing} (header: {header})")
            for row in reader:
                out.result.rows += 1
                line = reader.line_num
                try:
                    _check_width(row)
                    if kaggle:
                        _kaggle_row(out, config, row, line, csv_path, root)
                    else:
                        _hub_row(out, config, row, line, csv_path, root)
                except RowError as e:
                    key = "id" if kaggle else "file_name"
                    name = (row.get(key) or "").strip().replace("\\", "/")
                    vid = PurePosixPath(name).stem or None
                    out.reject(line, vid, f"line {line}: {e}", csv_path)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise AdapterError(f"{csv_path}: cannot read the Nexar CSV: {e}") from None


def _check_width(row: dict[str | None, str | None]) -> None:
    # DictReader puts surplus fields under None and fills short rows with None
    if None in row or None in row.values():
        got = sum(v is not None for k, v in row.items() if k is not None)
        got += len(row.get(None) or [])
        raise RowError(f"{got} fields, but the header has {len(row) - (None in row)}")


def _hub_row(
    out: ResultBuilder,
    config: NexarConfig,
    row: dict[str | None, str | None],
    line: int,
    csv_path: Path,
    root: Path,
) -> None:
    file_name = (row["file_name"] or "").strip().replace("\\", "/")
    if not file_name:
        raise RowError("empty file_name")
    rel = PurePosixPath(file_name)
    if rel.is_absolute() or ".." in rel.parts:
        raise RowError(f"file_name {file_name!r} must be a path inside {csv_path.parent}")
    folder = csv_path.parent.name
    label = _label(out, folder, line)
    if label is None:
        return
    _add(out, config, row, line, csv_path, label, folder, rel.stem, str(root / rel))


def _kaggle_row(
    out: ResultBuilder,
    config: NexarConfig,
    row: dict[str | None, str | None],
    line: int,
    csv_path: Path,
    root: Path,
) -> None:
    vid = (row["id"] or "").strip()
    if not vid:
        raise RowError("empty id")
    if vid.isdigit():
        vid = vid.zfill(config.kaggle_id_digits)
    target = (row["target"] or "").strip()
    if target not in config.targets:
        raise RowError(f"target {target!r} is not in targets {sorted(config.targets)}")
    folder = config.targets[target]
    label = _label(out, folder, line)
    if label is None:
        return
    path = str(root / csv_path.stem / f"{vid}.mp4")
    _add(out, config, row, line, csv_path, label, folder, vid, path, split=csv_path.stem)


def _label(out: ResultBuilder, folder: str, line: int) -> str | None:
    try:
        return out.label(folder, line)
    except RowError as e:
        raise RowError(f"{e} (a row's label is the name of the folder holding its CSV)") from None


def _add(
    out: ResultBuilder,
    config: NexarConfig,
    row: dict[str | None, str | None],
    line: int,
    csv_path: Path,
    label: str,
    folder: str,
    stem: str,
    path: str,
    split: str | None = None,
) -> None:
    split = split if split is not None else csv_path.parent.parent.name
    moment = _seconds(row["time_of_event"], "time_of_event")
    video_id = config.id_template.format(split=split, folder=folder, stem=stem)
    out.add(
        line,
        video_id,
        path,
        label,
        None if moment is None else (moment, moment, moment),
        folder,
        where=f"{csv_path} line {line}",
        light=out.value("light", row.get("light_conditions")),
        weather=out.value("weather", row.get("weather")),
        scene=out.value("scene", row.get("scene")),
        source_split=split or None,
    )
