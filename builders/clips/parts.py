"""The chunk stage's per-video records, `chunk/parts/<video_id>.json`, and their clip files.

A part holds one video's `VideoOutcome` (its clips, or why it was rejected), the key it
was cut with, and `files`: each clip file's size and sha256 as written (the same bytes
for the same inputs: parts are compared across runs). Where each file's modification
time was when its sha256 was last taken is a memo apart from them,
`cache/clip_states.json`, so an untouched clip is not hashed again.
In: a build folder and a part. Out: whether the clips it lists are still those bytes
(`clips_intact`), the records of new clips (`clip_files`), and the removal of parts of
videos that left the manifest.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from vlm_autodrive.builders.core.files import file_sha256, read_json, write_json

MEMO = Path("cache") / "clip_states.json"  # with the build's other memos, not an output


def read_part(part: Path) -> dict:
    """A part's record; {} when it does not parse (cut short by a kill: cut again)."""
    try:
        record = read_json(part)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def read_memo(build_dir: Path) -> dict[str, list]:
    """`{rel: [size, mtime_ns, sha256]}` of clip files as last hashed ({} when none)."""
    try:
        memo = read_json(Path(build_dir) / MEMO)
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def write_memo(build_dir: Path, memo: dict[str, list]) -> None:
    """Best effort: a memo only saves hashing; on a full disk the next run hashes again
    (and the stage's own writes say the disk is full, naming their file)."""
    with contextlib.suppress(OSError):
        write_json(Path(build_dir) / MEMO, dict(sorted(memo.items())))


def clip_intact(build_dir: Path, rel: str, size: int, sha: str | None, memo: dict) -> bool:
    """Whether the clip `rel` is there, not empty, `size` bytes and (when recorded) `sha`
    (hashed only when the memo has no entry for its size and modification time; the memo
    is updated)."""
    try:
        st = (Path(build_dir) / rel).stat()
    except OSError:
        return False
    if st.st_size == 0 or st.st_size != size:
        return False
    if sha is None:  # parts of older runs recorded no hash
        return True
    known = memo.get(rel)
    if known == [st.st_size, st.st_mtime_ns, sha]:
        return True
    actual = file_sha256(Path(build_dir) / rel)
    memo[rel] = [st.st_size, st.st_mtime_ns, actual]
    return actual == sha


def recorded_file(record: dict, rel: str) -> tuple[int | None, str | None]:
    """(size, sha256) a part recorded for a clip file; older parts: [size, mtime, sha]."""
    entry = (record.get("files") or {}).get(rel)
    if not entry:
        return None, None
    return entry[0], entry[-1]


def clips_intact(build_dir: Path, record: dict, memo: dict | None = None) -> bool:
    """Whether every clip a part lists is the file the cut wrote (see `clip_intact`)."""
    memo = {} if memo is None else memo
    for clip in record.get("clips", []):
        _, sha = recorded_file(record, clip["path"])
        if not clip_intact(build_dir, clip["path"], clip["size_bytes"], sha, memo):
            return False
    return True


def clip_files(build_dir: Path, rels: list[str]) -> dict[str, list]:
    """`{rel: [size, sha256]}` of clip files just written (recorded in the part)."""
    return {rel: [(Path(build_dir) / rel).stat().st_size, file_sha256(Path(build_dir) / rel)]
            for rel in rels}  # fmt: skip


def remember(build_dir: Path, record: dict, memo: dict) -> None:
    """Put the clip files a part just recorded into the memo, with their modification
    times now (they were hashed as written)."""
    for rel, entry in (record.get("files") or {}).items():
        try:
            st = (Path(build_dir) / rel).stat()
        except OSError:
            continue
        memo[rel] = [st.st_size, st.st_mtime_ns, entry[-1]]


def remove_gone(build_dir: Path, parts: Path, keep: set[str]) -> int:
    """Delete the parts and clips of videos that left the manifest; how many."""
    gone = sorted(p.stem for p in parts.glob("*.json") if p.stem not in keep)
    for vid in gone:
        (parts / f"{vid}.json").unlink(missing_ok=True)
        shutil.rmtree(build_dir / "clips" / vid, ignore_errors=True)
    return len(gone)
