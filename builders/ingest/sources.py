"""The source video files of a manifest: which are missing, their sha256, and duplicates.

In: the validated manifest rows (`ManifestRow`, absolute paths) and the ingest folder.
Out:

- `unavailable_sources`: the files that are not there, empty, or not regular files (by
  their stat; nothing is opened). Ingest (and chunk) stop on those of videos they
  recorded with `MissingSources` (exit 2, `refuse_unavailable`) before changing
  anything, unless the user prunes: a source folder that is briefly unmounted or
  renamed, or a file being copied again, must not delete a build's clips.
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
import queue
import threading
from pathlib import Path

from vlm_autodrive.builders.core.errors import InputError
from vlm_autodrive.builders.core.files import file_sha256, read_json, write_json_if_changed
from vlm_autodrive.builders.core.stage import RejectRecord
from vlm_autodrive.builders.ingest.manifest import ManifestRow
from vlm_autodrive.builders.ingest.probe import not_regular

HASH_MEMO = "source_hashes.json"
DUPLICATES = ("reject", "group")
NEAR_DUPLICATES = ("group", "off")
PHASH_MODULE = "vlm_autodrive.builders.audit.phash"


class MissingSources(InputError):
    """Video files the manifest lists are not there (or can no longer be read); nothing
    was changed."""


MISSING = "missing"


def source_problem(path: str) -> str | None:
    """Why the file at `path` cannot be a source as it stands, from its stat alone (no
    open: a FIFO or a stalled mount would block): `missing`, `not a regular file: ...`,
    `empty (0 bytes)`; None when it is a non-empty regular file."""
    try:
        st = os.stat(path)
    except OSError:
        return MISSING
    return not_regular(st.st_mode) or ("empty (0 bytes)" if st.st_size == 0 else None)


def unavailable_sources(paths: list[str]) -> dict[str, str]:
    """{path: why} for the files of `paths` that are missing, not regular files or empty."""
    found = {p: source_problem(p) for p in paths}
    return {p: why for p, why in found.items() if why}


def refuse_unavailable(source: Path, problems: dict[str, str], total: int, rerun: str) -> None:
    """Raise `MissingSources` naming how many files are missing or can no longer be read
    (`problems`: {path: why}, `MISSING` for a file that is not there) and the first few.

    `rerun` is the command (or option) that drops them on purpose."""
    if not problems:
        return
    n = len(problems)
    more = f" and {n - 3} more" if n > 3 else ""
    if all(why == MISSING for why in problems.values()):
        what = f"{n} of {total} video files are missing ({', '.join(list(problems)[:3])}{more})"
    else:
        first = ", ".join(f"{p}: {_short(why)}" for p, why in list(problems.items())[:3])
        what = f"{n} of {total} video files are missing or can no longer be read ({first}{more})"
    raise MissingSources(
        source,
        f"{what}; nothing was changed and no clip was deleted. If their folder is "
        "unmounted, renamed or moved, or a file was damaged, bring it back and run the same "
        f"command again; to drop these videos and delete their clips, {rerun}",
    )


def _short(why: str, limit: int = 100) -> str:
    return why if len(why) <= limit else why[: limit - 3] + "..."


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
    others are hashed in `workers` threads (hashlib releases the GIL on large blocks).
    Only regular files are opened (a FIFO would block its reader); the threads are
    daemons, so a signal ends the run even while one is blocked in a read."""
    stats: dict[str, os.stat_result | None] = {}
    for r in rows:
        try:
            st = os.stat(r.entry.path)
        except OSError:
            st = None
        # only regular files are opened: a FIFO or a device would block the reader
        stats[r.entry.path] = st if st is not None and not not_regular(st.st_mode) else None
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
    for path, sha in zip(todo, _map_in_daemon_threads(_sha_or_none, todo, workers)):
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


def _map_in_daemon_threads(fn, items: list, workers: int) -> list:
    """[fn(item) for item in items], computed in `workers` daemon threads.

    Why not a ThreadPoolExecutor: leaving one, and the interpreter's exit, wait for every
    thread, so a thread blocked in a read (a file on a stalled network mount) would keep
    SIGTERM or ^C from ending the run. Here the main thread waits in short steps (a
    signal's exception is raised there), tells the threads to stop, and leaves a blocked
    one behind: it dies with the process."""
    results: list = [None] * len(items)
    if not items:
        return results
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for i in range(len(items)):
        todo.put(i)
    done: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((i, fn(items[i]), None))
            except BaseException as e:  # handed to the main thread, raised there
                done.put((i, None, e))

    for _ in range(max(1, min(workers, len(items)))):
        threading.Thread(target=work, name="hash-sources", daemon=True).start()
    try:
        for _ in items:
            while True:
                try:
                    i, value, error = done.get(timeout=0.2)
                    break
                except queue.Empty:
                    continue
            if error is not None:
                raise error
            results[i] = value
    finally:
        stop.set()
    return results


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
