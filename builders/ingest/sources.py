"""The source video files of a manifest: which are missing, their sha256, and duplicates.

In: the validated manifest rows (`ManifestRow`, absolute paths) and the ingest folder.
Out:

- `missing_sources`: the rows whose file is not there. Ingest (and chunk) stop on them with
  `MissingSources` (exit 2) before changing anything, unless the user prunes: a source
  folder that is briefly unmounted or renamed must not delete a build's clips.
- `hash_sources`: every file's size and sha256, memoised across runs by path, size and
  modification time in `ingest/source_hashes.json`, so a re-run reads only new or
  changed files.
- `split_duplicates`: rows whose file has the same bytes as an earlier row's (by manifest
  line) under another id. `reject` (the default) rejects them naming the id they
  duplicate; `group` keeps them (the train/test assignment then puts every video of one
  file on the same side, `builders/dataset/assign.py`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vlm_autodrive.builders.core.errors import InputError
from vlm_autodrive.builders.core.files import file_sha256, read_json, write_json_if_changed
from vlm_autodrive.builders.core.stage import RejectRecord
from vlm_autodrive.builders.ingest.manifest import ManifestRow

HASH_MEMO = "source_hashes.json"
DUPLICATES = ("reject", "group")


class MissingSources(InputError):
    """Video files the manifest lists are not there; nothing was changed."""


def missing_sources(paths: list[str]) -> list[str]:
    """The video files of `paths` that do not exist (or cannot be read for their size)."""
    out = []
    for path in paths:
        try:
            os.stat(path)
        except OSError:
            out.append(path)
    return out


def refuse_missing(source: Path, missing: list[str], total: int, rerun: str) -> None:
    """Raise `MissingSources` naming how many files are missing and the first few.

    `rerun` is the command (or option) that drops them on purpose."""
    if not missing:
        return
    first = ", ".join(missing[:3])
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    raise MissingSources(
        source,
        f"{len(missing)} of {total} video files are missing ({first}{more}); nothing was "
        "changed and no clip was deleted. If their folder is unmounted, renamed or moved, "
        f"bring it back and run the same command again; to drop these videos and delete "
        f"their clips, {rerun}",
    )


def read_memo(ingest_dir: Path) -> dict[str, list]:
    """The previous run's `path -> [size, mtime_ns, sha256]` (empty when there is none)."""
    try:
        memo = read_json(Path(ingest_dir) / HASH_MEMO)
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def hash_sources(
    rows: list[ManifestRow], memo: dict[str, list], workers: int = 1
) -> tuple[dict[str, list | None], dict[str, list]]:
    """({video_id: [size, sha256], or None when the file cannot be read}, the new memo).

    A file whose path, size and modification time match the memo is not read again; the
    others are hashed in `workers` threads (hashlib releases the GIL on large blocks)."""
    stats: dict[str, os.stat_result | None] = {}
    for r in rows:
        try:
            stats[r.entry.path] = os.stat(r.entry.path)
        except OSError:
            stats[r.entry.path] = None
    todo = []
    new_memo: dict[str, list] = {}
    for path, st in stats.items():
        if st is None:
            continue
        old = memo.get(path)
        if old and old[0] == st.st_size and old[1] == st.st_mtime_ns:
            new_memo[path] = old
        else:
            todo.append(path)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for path, sha in zip(todo, pool.map(_sha_or_none, todo)):
            if sha is not None:
                st = stats[path]
                new_memo[path] = [st.st_size, st.st_mtime_ns, sha]
    files = {}
    for r in rows:
        m = new_memo.get(r.entry.path)
        files[r.entry.video_id] = [m[0], m[2]] if m else None
    return files, dict(sorted(new_memo.items()))


def write_memo(ingest_dir: Path, memo: dict[str, list]) -> None:
    write_json_if_changed(Path(ingest_dir) / HASH_MEMO, memo)


def _sha_or_none(path: str) -> str | None:
    try:
        return file_sha256(Path(path))
    except OSError:
        return None


def split_duplicates(
    manifest: Path, rows: list[ManifestRow], files: dict[str, list | None], mode: str
) -> tuple[list[ManifestRow], list[RejectRecord]]:
    """(the rows kept, the duplicate rows rejected): with `mode` "reject", a row whose
    file has the same sha256 as an earlier row's (by manifest line) is rejected naming
    that row's id and line; with "group" every row is kept."""
    if mode not in DUPLICATES:
        raise InputError("recipe", f"{mode!r} is not one of {DUPLICATES}", "ingest.duplicates")
    if mode == "group":
        return rows, []
    first: dict[str, ManifestRow] = {}
    kept, rejects = [], []
    for r in sorted(rows, key=lambda r: r.line):
        state = files.get(r.entry.video_id)
        sha = state[1] if state else None
        if sha is None or sha not in first:
            if sha is not None:
                first[sha] = r
            kept.append(r)
            continue
        orig = first[sha]
        rejects.append(
            RejectRecord(
                "ingest",
                str(manifest),
                r.line,
                r.entry.video_id,
                f"duplicate of video {orig.entry.video_id!r} (line {orig.line}): the same file "
                f"bytes (sha256 {sha[:12]}); its clips would be identical to that video's, "
                "possibly on the other side of the train/test split. Set "
                "`ingest.duplicates: group` in the recipe (or --duplicates group) to keep "
                "both on one side",
            )
        )
    return kept, rejects
