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
- `sign_sources`: with `ingest.near_duplicates: group`, every file's perceptual signature
  (`builders/audit/phash.py`'s `hash_video`, the audit's own), memoised in the same memo
  beside the sha256 (with the phash code's fingerprint: other code makes it again); the
  assignment puts videos whose signatures lie within the threshold on one side (a
  re-encoded or resized copy under another id, `builders/dataset/source_groups.py`).
"""

from __future__ import annotations

import base64
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vlm_autodrive.builders.core.errors import InputError
from vlm_autodrive.builders.core.files import file_sha256, read_json, write_json_if_changed
from vlm_autodrive.builders.core.stage import RejectRecord
from vlm_autodrive.builders.ingest.manifest import ManifestRow

HASH_MEMO = "source_hashes.json"
DUPLICATES = ("reject", "group")
NEAR_DUPLICATES = ("group", "off")
PHASH_MODULE = "vlm_autodrive.builders.audit.phash"


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
    """The previous run's `path -> [size, mtime_ns, sha256]`, with a fourth item when the
    file's perceptual signature was made (`sign_sources`); empty when there is none."""
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


def sign_sources(
    paths: list[str], memo: dict[str, list], workers: int = 1, progress: bool = False
) -> dict[str, bytes | None]:
    """{path: perceptual signature (`hash_video`'s, FRAMES x 63 float32 little-endian
    bytes), or None when the file cannot be decoded for it}.

    A signature the memo holds for the file's size and time, made by today's phash code,
    is reused; the others are made in `workers` processes and written into `memo` (the
    entries `hash_sources` made this run; the caller writes it, or not in a dry run)."""
    from vlm_autodrive.builders.core.fingerprint import code_fingerprint

    made_by = code_fingerprint((PHASH_MODULE,))[:16]
    out: dict[str, bytes | None] = {}
    todo = []
    for path in sorted(set(paths)):
        entry = memo.get(path)
        known = entry[3] if entry and len(entry) > 3 else None
        if isinstance(known, dict) and known.get("made_by") == made_by:
            sig = known.get("signature")
            out[path] = base64.b64decode(sig) if sig else None
        else:
            todo.append(path)
    if not todo:
        return out
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="signature", unit="video", disable=not progress)
    if workers <= 1 or len(todo) < 4:
        results = map(_signature, todo)
        made = _collect(todo, results, bar)
    else:
        from vlm_autodrive.builders.core.children import worker_pool

        with worker_pool(workers) as pool:  # decoding is CPU work: processes
            made = _collect(todo, pool.map(_signature, todo, chunksize=4), bar)
    bar.close()
    for path, (sig, error) in made.items():
        out[path] = sig
        if path in memo:
            text = base64.b64encode(sig).decode() if sig is not None else None
            memo[path] = [*memo[path][:3], {"made_by": made_by, "signature": text, "error": error}]
    return out


def _collect(paths, results, bar) -> dict[str, tuple[bytes | None, str]]:
    made = {}
    for path, result in zip(paths, results, strict=True):
        made[path] = result
        bar.update()
    return made


def _signature(path: str) -> tuple[bytes | None, str]:
    """(the signature's bytes or None, why not)."""
    import numpy as np

    from vlm_autodrive.builders.audit.phash import hash_video

    h = hash_video(Path(path))
    if h.signature is None:
        return None, h.error
    return np.asarray(h.signature, dtype="<f4").tobytes(), ""
