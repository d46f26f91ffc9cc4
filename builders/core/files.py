"""Small file helpers shared by the stages: atomic writes, record tables, content hashes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary sibling of `path` to write; renamed to `path` when the block ends
    without an error, removed otherwise. So `path` is always the old file or the whole
    new one, never a half-written one (a killed run leaves only a hidden `.tmp`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write text so that `path` is either the old file or the whole new one."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_text_if_changed(path: Path, text: str) -> bool:
    """`atomic_write_text` unless `path` already holds exactly `text` (then the file, its
    bytes and modification time, is left alone: a rebuild that changes nothing touches
    nothing). True when it wrote."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write_text(path, text)
    return True


def write_parquet(table: Any, path: Path) -> None:
    """Write an Arrow table as Parquet, atomically."""
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def to_row(record: Any) -> dict[str, Any]:
    """A record (pydantic model or dataclass) as a plain dict of its Arrow columns."""
    if dataclasses.is_dataclass(record):
        return dataclasses.asdict(record)
    return record.model_dump()  # a pydantic model


def write_table(records: list[Any], schema: Any, path: Path) -> None:
    """Write records as Parquet atomically (temporary name, then rename)."""
    import pyarrow as pa

    write_parquet(pa.Table.from_pylist([to_row(r) for r in records], schema=schema), path)


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_json_if_changed(path: Path, obj: Any) -> bool:
    """`write_json` unless the file already holds the same text; True when it wrote."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return write_text_if_changed(path, text)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_MEMO: dict[tuple[str, int, int], str] = {}


def memoized_sha256(path: str | Path) -> str:
    """`file_sha256`, memoized in this process per path, size and modification time (a
    clip hashed for every request or eval item that names it is read once)."""
    st = os.stat(path)
    memo = (str(path), st.st_size, st.st_mtime_ns)
    if memo not in _MEMO:
        _MEMO[memo] = file_sha256(Path(path))
    return _MEMO[memo]


def remember_sha256(path: str | Path, sha: str) -> None:
    """Record `sha` as the sha256 of the file at `path` as it is now (its writer hashed
    it already), for `memoized_sha256` (a data file was hashed three times as it was
    stored, listed in provenance.json and recorded in the stage's stamp)."""
    st = os.stat(path)
    _MEMO[(str(path), st.st_size, st.st_mtime_ns)] = sha


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stamped_folder_is_current(out_dir: Path, stamp_name: str, params: dict) -> bool:
    """Whether `build_stamped_folder(out_dir, stamp_name, params, ...)` would do nothing."""
    try:
        return json.loads((Path(out_dir) / stamp_name).read_text()) == params
    except (OSError, ValueError):
        return False


def build_stamped_folder(
    out_dir: Path, stamp_name: str, params: dict, write: Callable[[Path], None]
) -> Path:
    """Build a folder once per `params`: `write(tmp)` fills a temporary sibling, which is
    stamped with `params` and renamed into place, so a killed build leaves nothing
    half-written. A folder already stamped with the same params is reused untouched; a
    non-empty folder without a stamp is refused (it is not ours)."""
    out_dir = Path(out_dir)
    if stamped_folder_is_current(out_dir, stamp_name, params):
        return out_dir
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / stamp_name).is_file():
        raise FileExistsError(f"{out_dir} exists and has no {stamp_name} stamp; not touching it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the folder is for every user
        write(tmp)
        (tmp / stamp_name).write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
