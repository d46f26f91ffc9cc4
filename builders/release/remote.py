"""A release's files as the Hub holds them, compared with the local ones by content.

In: an `HfApi`, the repo and a commit sha; the staged release folder and its paths. Out:
`remote_files`: path -> (size, sha256 of an LFS file or None, git blob oid), from the
tree listing of that commit (`list_repo_tree(recursive=True, expand=False)` carries the
LFS sha256 and size of every file); `compare_files`: one line per file that is missing,
or whose size or content differs (sha256 for LFS files, the git blob oid of the bytes for
regular ones). An empty list means the commit holds exactly the local content.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.files import file_sha256

REPO_TYPE = "dataset"


def remote_files(api: Any, repo: str, revision: str) -> dict[str, tuple[int, str | None, str]]:
    """path -> (size, LFS sha256 or None, git blob oid) of every file at `revision`."""
    out = {}
    for f in api.list_repo_tree(repo, repo_type=REPO_TYPE, revision=revision, recursive=True):
        if getattr(f, "blob_id", None) is None:  # a folder
            continue
        lfs = getattr(f, "lfs", None)
        out[f.path] = (f.size, lfs.sha256 if lfs else None, f.blob_id)
    return out


def git_blob_oid(path: Path) -> str:
    """The git object id of the file's bytes (what the Hub gives for a regular file)."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def compare_files(
    folder: Path, paths: list[str], remote: dict[str, tuple[int, str | None, str]]
) -> list[str]:
    """What differs between the local `folder/path` files and `remote` (empty: none)."""
    bad = []
    for rel in paths:
        local = Path(folder) / rel
        if rel not in remote:
            bad.append(f"{rel} missing")
            continue
        size, sha, oid = remote[rel]
        if size != local.stat().st_size:
            bad.append(f"{rel} has {size} bytes, not {local.stat().st_size}")
        elif sha is not None and sha != file_sha256(local):
            bad.append(f"{rel} sha256 {sha[:12]} differs from the local {file_sha256(local)[:12]}")
        elif sha is None and oid != git_blob_oid(local):
            bad.append(f"{rel} content differs (git blob {oid[:12]})")
    return bad
