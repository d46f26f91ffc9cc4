"""Small file helpers shared by the stages: atomic writes, rejects files, content hashes."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .records import RejectRecord


def atomic_write_text(path: Path, text: str) -> None:
    """Write text so that `path` is either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_rejects(path: Path, rejects: Iterable[RejectRecord]) -> None:
    atomic_write_text(path, "".join(r.to_json() + "\n" for r in rejects))


def read_rejects(path: Path) -> list[RejectRecord]:
    if not path.exists():
        return []
    return [RejectRecord(**json.loads(line)) for line in path.read_text().splitlines() if line]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
