"""Reading manifests in the project's own schema: JSONL, CSV or Parquet.

Every row is validated into a `ManifestEntry`; a row that cannot be read or validated
becomes a `RejectRecord` naming the file, the line (or Parquet row) and the key, and
reading goes on. Relative video paths are resolved against the manifest's folder.
"""

from __future__ import annotations

import csv
import errno
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vlm_autodrive.builders.core.errors import InputError, require_file
from vlm_autodrive.builders.core.stage import RejectRecord
from vlm_autodrive.builders.ingest.records import ManifestEntry, VideoMetadata

# CSV has no nesting: metadata comes either as one JSON column `metadata`, or as flat
# columns named after its fields (with `actors` as a JSON list, `cause` a JSON object).
_METADATA_FIELDS = set(VideoMetadata.model_fields)
_TIME_FIELDS = ("event_start", "event_time", "event_end")
# Python's csv refuses fields over 128 KB by default; a long metadata cell is legitimate.
_CSV_FIELD_LIMIT = 64 * 1024 * 1024


@dataclass
class ManifestRow:
    """A validated manifest entry and where it came from (`line` is 1-based)."""

    entry: ManifestEntry
    line: int


def read_manifest(
    path: Path, labels: list[str], normal: str | None = None
) -> tuple[list[ManifestRow], list[RejectRecord]]:
    """Read and validate a manifest; returns the good rows and the rejects.

    Rejected: unreadable rows, schema errors, labels outside `labels`, repeated video
    ids (the first occurrence is kept; the reject names both lines), and, when `normal`
    (the taxonomy's background class) is given, event-class rows without `event_time`
    and `normal` rows with one: chunking would label such a video's clips wrongly.
    """
    path = Path(path)
    require_file(path, "a manifest")
    rows: list[ManifestRow] = []
    rejects: list[RejectRecord] = []
    first_line: dict[str, int] = {}
    known = set(labels)
    for line, raw in _raw_rows(path):
        if isinstance(raw, Exception):
            vid = getattr(raw, "video_id", None)
            rejects.append(RejectRecord("ingest", str(path), line, vid, f"unreadable row: {raw}"))
            continue
        vid = raw.get("video_id") if isinstance(raw, dict) else None
        try:
            entry = ManifestEntry.model_validate(raw)
        except ValidationError as e:
            reason = "; ".join(_error_text(err) for err in e.errors())
            rejects.append(RejectRecord("ingest", str(path), line, _str_or_none(vid), reason))
            continue
        if entry.label not in known:
            rejects.append(
                RejectRecord(
                    "ingest",
                    str(path),
                    line,
                    entry.video_id,
                    f"unknown label {entry.label!r} (the taxonomy has {sorted(known)})",
                )
            )
            continue
        problem = _event_problem(entry, normal)
        if problem:
            rejects.append(RejectRecord("ingest", str(path), line, entry.video_id, problem))
            continue
        if entry.video_id in first_line:
            rejects.append(
                RejectRecord(
                    "ingest",
                    str(path),
                    line,
                    entry.video_id,
                    f"duplicate video_id (first seen on line {first_line[entry.video_id]})",
                )
            )
            continue
        resolved, problem = _resolve(path.parent, entry.path)
        if problem:
            rejects.append(RejectRecord("ingest", str(path), line, entry.video_id, problem))
            continue
        first_line[entry.video_id] = line
        entry.path = resolved
        rows.append(ManifestRow(entry, line))
    if not rows and not rejects:
        raise InputError(path, "no rows: the manifest lists no video (is it the right file?)")
    return rows, rejects


def _error_text(err: dict) -> str:
    """`key.path: message`, with the value given when its type is wrong (`true` for a
    number: which key holds it is not enough to find it)."""
    where = ".".join(str(p) for p in err["loc"]) or "row"
    text = f"{where}: {err['msg']}"
    if err["type"] in _TYPE_ERRORS:
        given = json.dumps(err["input"]) if _jsonable(err["input"]) else repr(err["input"])
        text += f" (got {given[:60]})"
    return text


_TYPE_ERRORS = ("float_type", "int_type", "string_type", "bool_type", "list_type")


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _resolve(folder: Path, video: str) -> tuple[str, str | None]:
    """(the video's path, relative ones resolved against `folder`; None) or ("", why the
    path cannot be a file): a symlink loop or a path the system refuses is this row's
    problem, not the ingest's. A path that is merely missing is left to the caller."""
    p = Path(video)
    try:
        target = p if p.is_absolute() else (folder / p).resolve()
        target.stat()
    except RuntimeError:  # Python < 3.13 reports a loop met while resolving so
        return "", f"path: {video}: a symbolic link loop"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "", f"path: {video}: a symbolic link loop"
        if e.errno == errno.ENAMETOOLONG:
            return "", f"path: {video[:80]}...: {e.strerror}"
        # missing or unreadable: the caller names missing files together, probing the rest
    return str(target), None


def _event_problem(entry: ManifestEntry, normal: str | None) -> str | None:
    if normal is None:
        return None
    if entry.label == normal and entry.has_event:
        return f"label {entry.label!r} is the background class but the row has an event_time"
    if entry.label != normal and not entry.has_event:
        return f"label {entry.label!r} is an event class but the row has no event_time"
    return None


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _raw_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | Exception]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        yield from _jsonl_rows(path)
    elif suffix == ".csv":
        yield from _csv_rows(path)
    elif suffix == ".parquet":
        yield from _parquet_rows(path)
    else:
        raise InputError(path, f"unknown manifest format {suffix!r} (use .jsonl, .csv, .parquet)")


def _undecodable(text: str, column: bool = True) -> ValueError | None:
    """Why a line read with `surrogateescape` is not UTF-8, or None when it is; `column`:
    name the character's column (a JSONL line; a CSV row's cells are no longer a line)."""
    for col, ch in enumerate(text, start=1):
        if "\udc80" <= ch <= "\udcff":
            at = f" at column {col}" if column else ""
            return ValueError(f"not UTF-8 (byte {ord(ch) - 0xDC00:#04x}{at})")
    return None


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | Exception]]:
    # utf-8-sig: a byte-order mark at the start is skipped; surrogateescape: a line that
    # is not UTF-8 is rejected on its own, the rest of the manifest is still read.
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as f:
        for i, text in enumerate(f, start=1):
            if not text.strip():
                continue
            bad = _undecodable(text)
            if bad:
                yield i, bad
                continue
            try:
                obj = json.loads(text, object_pairs_hook=_unique_keys)
            except json.JSONDecodeError as e:
                yield i, ValueError(f"not valid JSON ({e.msg} at column {e.colno})")
                continue
            except ValueError as e:  # a key given twice: name the row by its id
                yield i, _RowProblem(str(e), _last_id(text))
                continue
            yield i, obj if isinstance(obj, dict) else ValueError("a row must be a JSON object")


class _RowProblem(ValueError):
    """A row that cannot be read, with its `video_id` when it can still be told."""

    def __init__(self, message: str, video_id: str | None) -> None:
        super().__init__(message)
        self.video_id = video_id


def _last_id(text: str) -> str | None:
    obj = json.loads(text)  # parsed before, with the duplicate-key check
    return _str_or_none(obj.get("video_id")) if isinstance(obj, dict) else None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict; ValueError naming a key given twice (json keeps
    the last silently: which value the writer meant is unknown)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} is given twice")
        out[key] = value
    return out


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | Exception]]:
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.DictReader(f)
        rows = iter(reader)
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as e:  # the file's structure, not one row: nothing after it reads
                raise InputError(path, f"not readable as CSV: {e}", reader.line_num) from None
            line = reader.line_num  # the physical line the row ended on
            bad = _undecodable("".join(f"{k}{v}" for k, v in row.items() if k and v), False)
            if bad:
                yield line, bad
                continue
            if None in row:
                yield line, ValueError("more fields than the header has columns")
                continue
            try:
                yield line, _from_flat(row)
            except ValueError as e:
                yield line, _RowProblem(str(e), _str_or_none(row.get("video_id")))


def _from_flat(row: dict[str, str | None]) -> dict[str, Any]:
    """A CSV row (all strings) as a nested manifest dict; empty cells are missing."""
    out: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or value.strip() == "":
            continue
        if key == "metadata":
            meta.update(_json_cell(key, value))
        elif key in ("actors", "cause"):
            meta[key] = _json_cell(key, value)
        elif key in _METADATA_FIELDS:
            meta[key] = value
        elif key in _TIME_FIELDS:  # a CSV cell is text: the number it writes
            out[key] = _number_cell(key, value)
        else:
            out[key] = value
    if meta:
        out["metadata"] = meta
    return out


def _number_cell(key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{key}: {value!r} is not a number of seconds") from None


def _json_cell(key: str, value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        raise ValueError(f"column {key!r} is not valid JSON ({e.msg})") from None


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | Exception]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise InputError(path, f"not a readable Parquet file ({e})") from None
    for i, row in enumerate(table.to_pylist(), start=1):
        row = {k: v for k, v in row.items() if v is not None}
        if isinstance(row.get("metadata"), str):
            try:
                row["metadata"] = _json_cell("metadata", row["metadata"])
            except ValueError as e:
                yield i, e
                continue
        if isinstance(row.get("metadata"), dict):
            row["metadata"] = {k: v for k, v in row["metadata"].items() if v is not None}
        yield i, row
