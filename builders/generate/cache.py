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
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
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
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

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
        with self.db:
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
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO current_attempt VALUES (?, ?)", list(attempts.items())
            )

    def stats(self) -> dict[str, Any]:
        (n,) = self.db.execute("SELECT COUNT(*) FROM responses").fetchone()
        return {"responses": n, "path": str(self.path)}
