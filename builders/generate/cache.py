"""The response cache: every model response ever received, in SQLite (WAL mode).

Key = hash of (model id and revision, sampling parameters, rendered messages, output
constraint, the request's `key_extra` (the clip or side it is for, the content hash of an
attached video), attempt). Each stored row is one sample of one request. Because the key
holds the rendered prompt, a template edit misses the cache only for the rows whose
prompt it changed; a parser change re-parses stored responses without a model call.

Writes are committed in small transactions as responses arrive, so a killed run keeps
everything it received (at most the last open transaction is lost, and re-sent).
`attempt` > 0 marks a deliberate re-send of a failed request (`--retry-failed`): it
gets a new key and seed, and the `current_attempt` table says which attempt a request
uses now.

A write that SQLite cannot make (the disk is full, the folder is read-only) raises
CacheWriteError, an OSError whose message names the cache and what to do; the failed
transaction is rolled back, so every response stored before is kept intact.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.generate.backends.base import (
    Completion,
    GenerationRequest,
    GenerationResponse,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT NOT NULL,
    sample INTEGER NOT NULL,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    reasoning TEXT,
    finish_reason TEXT,
    completion_tokens INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (key, sample)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS current_attempt (
    base_key TEXT PRIMARY KEY,
    attempt INTEGER NOT NULL
) WITHOUT ROWID;
"""
_CHUNK = 500  # SQLite's default limit on bound parameters is 999 (older builds)
_FULL_BELOW = 1 << 20  # free bytes under which a failed write is put down to a full disk


def request_key(model_id: str, request: GenerationRequest, attempt: int = 0) -> str:
    """The cache key of a request (its `request_id` is set to this by the pipeline)."""
    payload = {
        "model": model_id,
        "sampling": asdict(request.sampling),
        "messages": request.messages,
        "constraint": request.constraint,
    }
    if request.key_extra:
        payload["extra"] = request.key_extra
    if attempt:
        payload["attempt"] = attempt
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CacheWriteError(OSError):
    """The response cache could not be written; the CLI prints it as `error: ...` (exit 1)."""


class ResponseCache:
    """SQLite-backed store of responses, keyed by `request_key`."""

    def __init__(self, path: Path, create: bool = True):
        """`create` False (a dry run): a cache that does not exist yet is an empty one
        in memory, and nothing is written to the build folder."""
        self.path = path
        if not create and not path.exists():
            target = ":memory:"
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            target = str(path)
        self.db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        with self._writing("opening"):
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Turn SQLite's write errors into a CacheWriteError saying what to do (the
        transaction of the failed write is already rolled back by then)."""
        try:
            yield
        except sqlite3.OperationalError as e:
            if getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or self._disk_full():
                raise CacheWriteError(
                    f"{self.path}: the disk is full ({what} the response cache: SQLite says "
                    f"'{e}'). Every response stored before is kept; free space on the disk "
                    f"that holds {self.path.parent} and run the same command again: only the "
                    "requests not stored yet are sent"
                ) from None
            raise CacheWriteError(
                f"{self.path}: cannot write the response cache ({what}: {e}); every "
                "response stored before is kept. Fix the cause and run the same command again"
            ) from None

    def _disk_full(self) -> bool:
        # A full disk met while growing the WAL's shared-memory file is reported as a
        # "disk I/O error", not SQLITE_FULL: the free space tells them apart.
        try:
            return shutil.disk_usage(self.path.parent).free < _FULL_BELOW
        except OSError:
            return False

    def close(self) -> None:
        self.db.close()

    def get_many(self, keys: Iterable[str], n: int) -> dict[str, GenerationResponse]:
        """Responses for the keys whose `n` samples are all stored."""
        found: dict[str, dict[int, tuple]] = {}
        keys = list(dict.fromkeys(keys))
        for i in range(0, len(keys), _CHUNK):
            part = keys[i : i + _CHUNK]
            marks = ",".join("?" * len(part))
            for row in self.db.execute(
                "SELECT key, sample, text, reasoning, finish_reason, completion_tokens,"
                f" prompt_tokens FROM responses WHERE key IN ({marks})",
                part,
            ):
                found.setdefault(row[0], {})[row[1]] = row[2:]
        out = {}
        for key, samples in found.items():
            if all(s in samples for s in range(n)):
                comps = [Completion(*samples[s][:4]) for s in range(n)]
                out[key] = GenerationResponse(key, comps, prompt_tokens=samples[0][4])
        return out

    def put_many(self, model: str, responses: Sequence[GenerationResponse]) -> None:
        """Store successful responses in one transaction (failed ones are not cached)."""
        now = time.time()
        rows = [
            (
                r.request_id,
                i,
                model,
                c.text,
                c.reasoning,
                c.finish_reason,
                c.completion_tokens,
                r.prompt_tokens,
                now,
            )
            for r in responses
            if r.error is None
            for i, c in enumerate(r.completions)
        ]
        with self._writing("storing responses in"), self.db:
            self.db.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?,?,?)", rows)

    def attempts(self, base_keys: Iterable[str]) -> dict[str, int]:
        """The attempt each request uses now (absent = 0)."""
        base_keys = list(base_keys)
        out: dict[str, int] = {}
        for i in range(0, len(base_keys), _CHUNK):
            part = base_keys[i : i + _CHUNK]
            marks = ",".join("?" * len(part))
            out.update(
                self.db.execute(
                    f"SELECT base_key, attempt FROM current_attempt WHERE base_key IN ({marks})",
                    part,
                ).fetchall()
            )
        return out

    def set_attempts(self, attempts: dict[str, int]) -> None:
        with self._writing("recording the attempts of failed requests in"), self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO current_attempt VALUES (?, ?)", list(attempts.items())
            )

    def stats(self) -> dict[str, Any]:
        (n,) = self.db.execute("SELECT COUNT(*) FROM responses").fetchone()
        return {"responses": n, "path": str(self.path)}
