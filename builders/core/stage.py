"""The stage base: what every stage of the pipeline does the same way.

In: a build folder and the stage's name. Out, under `BUILD/<name>/`:

- `stamp.json`: the stage's content key (a hash of everything it was made from: input
  tables or files, settings, templates, taxonomy), the sha256 of every output it wrote
  (relative to the build folder) and its summary. Written last, atomically: a killed
  run leaves the previous stamp, which no longer matches, so the stage runs again.
- `rejects.jsonl`: the rejects sink, one `RejectRecord` per input the stage refused.

A stage asks `finished(key)` first: the stored summary when the last run had the same key
and every output it recorded is still there, byte for byte; else None and it does the
work, then `commit(key, outputs, summary)`. `Counts` holds a stage's conserved counts
(inputs = outputs + rejects + dropped + failures) and `check()` refuses a run that lost
or duplicated anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.files import (
    atomic_write_text,
    file_sha256,
    memoized_sha256,
    read_json,
    write_json,
)

STAMP = "stamp.json"
REJECTS = "rejects.jsonl"


def content_key(inputs: Any) -> str:
    """The sha256 of `inputs` as canonical JSON (sorted keys; paths become strings)."""
    text = json.dumps(inputs, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclasses.dataclass
class RejectRecord:
    """An input that a stage could not use, with the reason (a row of `rejects.jsonl`)."""

    stage: str
    source: str
    line: int | None
    video_id: str | None
    reason: str

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)


def write_rejects(path: Path, rejects: Iterable[RejectRecord]) -> None:
    """Write a rejects file (JSON lines), atomically."""
    atomic_write_text(path, "".join(r.to_json() + "\n" for r in rejects))


def read_rejects(path: Path) -> list[RejectRecord]:
    """Read a rejects file; no file is no rejects."""
    if not path.exists():
        return []
    return [RejectRecord(**json.loads(line)) for line in path.read_text().splitlines() if line]


# The command that writes each stage input, named when the input is missing.
_MADE_BY = {
    "ingest": "autodrive ingest MANIFEST --build {build}",
    "chunk": "autodrive chunk --build {build}",
}


def require_stage_input(build_dir: Path, rel: str) -> Path:
    """`build_dir/rel`, a table an earlier stage writes; an InputError naming the stage
    to run first when it is not there (checked before any work or write)."""
    from vlm_autodrive.builders.core.errors import InputError

    path = Path(build_dir) / rel
    if path.is_file():
        return path
    stage = rel.split("/")[0]
    command = _MADE_BY.get(stage, "autodrive build RECIPE").format(build=build_dir)
    if not Path(build_dir).is_dir():
        problem = "no build folder here"
    else:
        problem = f"{rel} not found (the {stage} stage has not run here)"
    raise InputError(build_dir, f"{problem}: run `{command}` first")


class CountError(AssertionError):
    """A stage's counts do not add up: something was lost or counted twice."""


@dataclass
class Counts:
    """A stage's conserved counts: every input is an output, a reject, a drop with a named
    reason, or a failure."""

    what: str  # what is counted, e.g. "manifest rows" or "windows"
    inputs: int
    outputs: int
    rejects: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    failures: int = 0

    def check(self) -> Counts:
        accounted = self.outputs + self.rejects + sum(self.dropped.values()) + self.failures
        if accounted != self.inputs:
            raise CountError(
                f"{self.what}: {self.inputs} in, but {self.outputs} out + {self.rejects} "
                f"rejected + {sum(self.dropped.values())} dropped {self.dropped} + "
                f"{self.failures} failed = {accounted}"
            )
        return self


class Stage:
    """One stage's folder in a build: its stamp and its rejects sink."""

    def __init__(self, build_dir: Path, name: str):
        self.build_dir = Path(build_dir)
        self.name = name
        self.dir = self.build_dir / name

    def finished(self, key: str) -> dict[str, Any] | None:
        """The stored summary when the last run had `key` and its outputs are intact."""
        stamp = self._stamp()
        if stamp is None or stamp.get("key") != key or not self._intact(stamp):
            return None
        return stamp.get("summary", {})

    def intact_summary(self) -> dict[str, Any] | None:
        """The stored summary when every output the stamp records is intact, whatever
        the key (what a stage may reuse part of when its key changed); else None."""
        stamp = self._stamp()
        return stamp.get("summary", {}) if stamp is not None and self._intact(stamp) else None

    def _stamp(self) -> dict[str, Any] | None:
        try:
            return read_json(self.dir / STAMP)
        except (OSError, ValueError):
            return None

    def _intact(self, stamp: Mapping[str, Any]) -> bool:
        for rel, sha in stamp.get("outputs", {}).items():
            f = self.build_dir / rel
            if not f.is_file() or file_sha256(f) != sha:
                return False
        return True

    def commit(
        self,
        key: str,
        outputs: Iterable[str],
        summary: Mapping[str, Any],
        inputs: Mapping[str, str] | None = None,
    ) -> None:
        """Record that the outputs (paths relative to the build folder, already written)
        were made from `key`, with the summary to return when nothing changes. `inputs`:
        the sha256 of each upstream output read (relative path -> sha256), which publish
        compares with the upstream stage's current stamp (builders/release/verify.py)."""
        hashes = {rel: memoized_sha256(self.build_dir / rel) for rel in sorted(set(outputs))}
        stamp = {"key": key, "outputs": hashes, "summary": dict(summary)}
        if inputs:
            stamp["inputs"] = dict(sorted(inputs.items()))
        write_json(self.dir / STAMP, stamp)

    def invalidate(self) -> None:
        """Forget the stamp (the stage's outputs are about to change)."""
        (self.dir / STAMP).unlink(missing_ok=True)

    @property
    def rejects_path(self) -> Path:
        return self.dir / REJECTS

    def write_rejects(self, rejects: Iterable[RejectRecord]) -> str:
        """Write the rejects sink; returns its path relative to the build folder."""
        write_rejects(self.rejects_path, rejects)
        return self.rejects_path.relative_to(self.build_dir).as_posix()

    def read_rejects(self) -> list[RejectRecord]:
        return read_rejects(self.rejects_path)
