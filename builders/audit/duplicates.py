"""Duplicates: byte-identical sources and clips, near-duplicate sources, repeated questions.

In: the build folder (`ingest/videos.parquet`, `chunk/clips.parquet`,
`split/assignment.parquet`, the configs). Out: `DuplicateGroup`s (each with the sides its
members landed on: a group on both train and test is a leak of the test set) and
`QuestionDuplicates` per config and side.

Sources take the sha256 and perceptual signature ingest recorded (`ingest.near_duplicates:
group`; the same `hash_video`); what the table lacks, and every clip, is hashed here once
per file: `BUILD/audit/file_hashes.parquet` keeps each file's path, size, modification
time, sha256 and signature, and a re-run reads a file again only when its size or time
changed. A file that is missing or cannot be decoded
is counted (`missing`, `unreadable`), never a stop.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from vlm_autodrive.builders.audit.phash import DEFAULT_THRESHOLD, VideoHash, hash_video, near_pairs
from vlm_autodrive.builders.audit.records import DuplicateGroup, QuestionDuplicates

HASH_CACHE = "file_hashes.parquet"


def _file_state(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class HashCache:
    """sha256 and perceptual signature per file, reused while size and mtime hold."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        if path.is_file():
            import pyarrow.parquet as pq

            try:
                for r in pq.read_table(path).to_pylist():
                    self.entries[r["path"]] = r
            except Exception:  # a damaged cache is rebuilt, not trusted
                self.entries = {}
        self.read = 0

    def get(
        self,
        path: Path,
        perceptual: bool,
        video_id: str = "",
        sha256: str | None = None,
        signature: bytes | None = None,
    ) -> dict[str, Any] | None:
        """The file's entry (`sha256`, `signature` when `perceptual`, `error`); None when
        the file is missing. `sha256`, `signature`: the file's hash and perceptual
        signature when a table records them (ingest's, made by the same `hash_video`),
        so the file is not read again for them."""
        state = _file_state(path)
        if state is None:
            return None
        key = str(path)
        e = self.entries.get(key)
        if e is None or (e["size"], e["mtime_ns"]) != state or (sha256 and e["sha256"] != sha256):
            e = {"path": key, "size": state[0], "mtime_ns": state[1]}
            e.update(sha256=sha256 or _sha256(path), signature=None, error="")
            self.read += 0 if sha256 else 1
        if perceptual and signature and e["signature"] is None:
            e["signature"] = np.frombuffer(signature, dtype="<f4").tolist()
            e["error"] = ""
        if perceptual and e["signature"] is None and not e["error"]:
            h = hash_video(path, video_id)
            e["signature"] = None if h.signature is None else h.signature.tolist()
            e["error"] = h.error
            self.read += 1
        self.entries[key] = e
        return e

    def save(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema(
            [("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()),
             ("sha256", pa.string()), ("signature", pa.list_(pa.float32())),
             ("error", pa.string())]
        )  # fmt: skip
        rows = [self.entries[k] for k in sorted(self.entries)]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
        os.replace(tmp, self.path)


def video_sides(assignment: list[dict[str, Any]]) -> dict[str, set[str]]:
    """video id -> the sides its clips were assigned to."""
    out: dict[str, set[str]] = defaultdict(set)
    for a in assignment:
        out[a["video_id"]].add(a["split"])
    return out


def _group(kind: str, members: list[tuple[str, str, str]], dist: float = 0.0) -> DuplicateGroup:
    """members: (id, path, side) sorted by id."""
    members = sorted(members)
    sides = [m[2] for m in members]
    # a source's side is every side of its clips ("held_out+test"): split it again
    cross = {"train", "test"} <= {part for s in sides for part in s.split("+")}
    ids, paths = [m[0] for m in members], [m[1] for m in members]
    return DuplicateGroup(kind, ids, paths, sides, cross, dist)


def _side(sides: set[str]) -> str:
    return "+".join(sorted(sides)) if sides else "unassigned"


def source_duplicates(
    videos: list[dict[str, Any]],
    sides: dict[str, set[str]],
    cache: HashCache,
    threshold: float = DEFAULT_THRESHOLD,
    perceptual: bool = True,
) -> tuple[list[DuplicateGroup], dict[str, int]]:
    """Byte-identical and near-duplicate source videos (`videos`: ingest rows with
    `video_id`, `path` and, when ingest recorded it, `sha256`). Returns the groups and
    counts (hashed, missing, unreadable)."""
    counts: Counter[str] = Counter()
    by_sha: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    hashes: list[VideoHash] = []
    for v in sorted(videos, key=lambda v: v["video_id"]):
        known = (v.get("sha256"), v.get("perceptual_signature"))
        e = cache.get(Path(v["path"]), perceptual, v["video_id"], *known)
        if e is None:
            counts["missing"] += 1
            continue
        counts["hashed"] += 1
        member = (v["video_id"], v["path"], _side(sides.get(v["video_id"], set())))
        by_sha[e["sha256"]].append(member)
        if perceptual and e["error"]:
            counts["unreadable"] += 1
        elif perceptual:
            sig = np.asarray(e["signature"], dtype=np.float32)
            hashes.append(VideoHash(v["video_id"], v["path"], sig))
    groups = [_group("source_bytes", m) for m in by_sha.values() if len(m) > 1]
    if perceptual and hashes:
        groups += _near_groups(hashes, sides, threshold, by_sha)
    return sorted(groups, key=lambda g: (g.kind, g.members)), dict(counts)


def _near_groups(hashes, sides, threshold, by_sha) -> list[DuplicateGroup]:
    """Connected components of the near pairs, byte-identical groups left out (they are
    reported as such)."""
    same_bytes = {frozenset(m[0] for m in ms) for ms in by_sha.values() if len(ms) > 1}
    parent = list(range(len(hashes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = near_pairs(hashes, threshold)
    for i, j, _ in pairs:
        ri, rj = root(i), root(j)
        parent[max(ri, rj)] = min(ri, rj)
    worst: dict[int, float] = defaultdict(float)
    for i, _, d in pairs:
        worst[root(i)] = max(worst[root(i)], d)
    comps: dict[int, list[int]] = defaultdict(list)
    for i in range(len(hashes)):
        comps[root(i)].append(i)
    out = []
    for r, idx in comps.items():
        ids = frozenset(hashes[i].video_id for i in idx)
        if len(idx) < 2 or ids in same_bytes:
            continue
        members = [
            (hashes[i].video_id, hashes[i].path, _side(sides.get(hashes[i].video_id, set())))
            for i in idx
        ]
        out.append(_group("source_near", members, worst.get(r, 0.0)))
    return out


def clip_duplicates(
    build_dir: Path, clips: list[dict[str, Any]], clip_side: dict[str, str], cache: HashCache
) -> tuple[list[DuplicateGroup], dict[str, int]]:
    """Byte-identical clip files (`clips`: rows with `clip_id` and `path` relative to the
    build folder)."""
    counts: Counter[str] = Counter()
    by_sha: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for c in sorted(clips, key=lambda c: c["clip_id"]):
        e = cache.get(build_dir / c["path"], perceptual=False)
        if e is None:
            counts["missing"] += 1
            continue
        counts["hashed"] += 1
        by_sha[e["sha256"]].append((c["clip_id"], c["path"], clip_side.get(c["clip_id"], "")))
    groups = [_group("clip_bytes", m) for m in by_sha.values() if len(m) > 1]
    return sorted(groups, key=lambda g: g.members), dict(counts)


def question_duplicates(config: str, rows: list[dict[str, Any]]) -> list[QuestionDuplicates]:
    """Per side, how many rows repeat a (question, options) already seen in the config.
    Rule configs ask one fixed question of every clip (mcq): read those counts with that
    in mind; they matter for model-written questions."""
    out = []
    for side in sorted({r["split"] for r in rows}):
        texts = Counter(
            (r.get("question") or "", tuple(r.get("options") or ()))
            for r in rows
            if r["split"] == side
        )
        n = sum(texts.values())
        (top, top_n) = min(texts.items(), key=lambda kv: (-kv[1], kv[0]))
        out.append(
            QuestionDuplicates(config, side, n, len(texts), n - len(texts), top[0][:200], top_n)
        )
    return out
