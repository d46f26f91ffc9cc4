"""A release's `SHA256SUMS`: the sha256 of every file it holds, in `sha256sum`'s format.

In: a release folder and its paths (relative to it), with the hashes already known of
some of them (the data files and clips, as publish verified them against what their
stages recorded). Out: `SHA256SUMS` at the top of the folder, one `SHA256  PATH` line
per file, sorted by path, which `sha256sum -c SHA256SUMS` checks from inside the
folder; `check_sums` does the same in Python (a list of what differs, empty when the
folder is whole). The file does not list itself, nor the local read-only marker that
`publish --to` writes after it (readonly.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from vlm_autodrive.builders.core.files import atomic_write_text, file_sha256

SHA256SUMS = "SHA256SUMS"


def _line(sha: str, rel: str) -> str:
    # sha256sum's escaping: a name with a backslash or a newline gets a leading backslash
    if "\\" in rel or "\n" in rel:
        return "\\" + sha + "  " + rel.replace("\\", "\\\\").replace("\n", "\\n")
    return f"{sha}  {rel}"


def write_sums(folder: Path, paths: Iterable[str], known: Mapping[str, str]) -> dict[str, str]:
    """Write `folder/SHA256SUMS` for `paths`; a path in `known` takes its hash from there
    (already verified), the others are hashed. Returns {path: sha256}."""
    folder = Path(folder)
    sums = {
        rel: known.get(rel) or file_sha256(folder / rel)
        for rel in sorted(set(paths) - {SHA256SUMS})
    }
    atomic_write_text(folder / SHA256SUMS, "".join(_line(s, r) + "\n" for r, s in sums.items()))
    return sums


def read_sums(folder: Path) -> dict[str, str]:
    """{path: sha256} as `folder/SHA256SUMS` lists them."""
    out = {}
    for line in (Path(folder) / SHA256SUMS).read_text(encoding="utf-8").splitlines():
        escaped = line.startswith("\\")
        sha, _, rel = line.lstrip("\\").partition("  ")
        if escaped:
            rel = rel.replace("\\n", "\n").replace("\\\\", "\\")
        out[rel] = sha
    return out


def check_sums(folder: Path) -> list[str]:
    """What in `folder` differs from its SHA256SUMS (a missing file, other bytes); []
    when every listed file is as recorded."""
    bad = []
    for rel, sha in read_sums(folder).items():
        path = Path(folder) / rel
        if not path.is_file():
            bad.append(f"{rel}: missing")
        elif file_sha256(path) != sha:
            bad.append(f"{rel}: sha256 differs from SHA256SUMS")
    return bad
