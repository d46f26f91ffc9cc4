"""The chunk stage's per-video records, `chunk/parts/<video_id>.json`, and their clip files.

A part holds one video's `VideoOutcome` (its clips, or why it was rejected), the key it
was cut with, and `files`: each clip file's size, modification time and sha256 as written.
In: a build folder and a part. Out: whether the clips it lists are still those bytes
(`clips_intact`: size first, sha256 only when the modification time moved), the records
of new clips (`clip_files`), and the removal of parts of videos that left the manifest.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from vlm_autodrive.builders.core.files import file_sha256, read_json


def read_part(part: Path) -> dict:
    """A part's record; {} when it does not parse (cut short by a kill: cut again)."""
    try:
        record = read_json(part)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def clips_intact(build_dir: Path, record: dict) -> bool:
    """Whether every clip a part lists is the file the cut wrote: there, not empty, its
    recorded size, and (when its modification time moved) its recorded sha256."""
    files = record.get("files") or {}
    for clip in record.get("clips", []):
        rel = clip["path"]
        try:
            st = (build_dir / rel).stat()
        except OSError:
            return False
        if st.st_size == 0 or st.st_size != clip["size_bytes"]:
            return False
        recorded = files.get(rel)  # [size, mtime_ns, sha256]; parts of older runs have none
        moved = recorded is not None and recorded[1] != st.st_mtime_ns
        if moved and file_sha256(build_dir / rel) != recorded[2]:
            return False
    return True


def clip_files(build_dir: Path, rels: list[str]) -> dict[str, list]:
    """`{rel: [size, mtime_ns, sha256]}` of clip files just written (recorded in the part)."""
    out = {}
    for rel in rels:
        path = Path(build_dir) / rel
        st = path.stat()
        out[rel] = [st.st_size, st.st_mtime_ns, file_sha256(path)]
    return out


def remove_gone(build_dir: Path, parts: Path, keep: set[str]) -> int:
    """Delete the parts and clips of videos that left the manifest; how many."""
    gone = sorted(p.stem for p in parts.glob("*.json") if p.stem not in keep)
    for vid in gone:
        (parts / f"{vid}.json").unlink(missing_ok=True)
        shutil.rmtree(build_dir / "clips" / vid, ignore_errors=True)
    return len(gone)
