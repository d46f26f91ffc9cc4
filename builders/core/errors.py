"""The one error type for bad input, and its message: `file: key or line: what is wrong`.

Raised anywhere a user's file, row, key or argument is wrong; `autodrive` prints it as
`autodrive: <file>: <where>: <message>` and exits 2 (vlm_autodrive/cli.py). It is a
ValueError, so code that already treats ValueError as bad input keeps working.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input: `source` (a file, or `command line`), `where` (a key path, `line N`,
    an argument; may be empty) and what is wrong."""

    def __init__(self, source: str | Path, message: str, where: str | int | None = None):
        self.source = str(source)
        self.where = f"line {where}" if isinstance(where, int) else where
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [self.source, self.where, self.message]
        return ": ".join(p for p in parts if p)


def require_folder_path(path: Path, what: str, where: str | None = None) -> None:
    """`path` may be absent (it is made) or a folder; a file there is an InputError."""
    if path.exists() and not path.is_dir():
        raise InputError(path, f"is a file, but {what} must be a folder", where)


def require_file(path: Path, what: str, where: str | None = None) -> None:
    """`path` must be an existing file (not a folder): InputError naming it otherwise."""
    if path.is_dir():
        raise InputError(path, f"is a folder, but {what} must be a file", where)
    if not path.exists():
        raise InputError(path, f"{what} not found", where)
