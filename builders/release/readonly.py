"""A published release folder is read-only to every command that writes into a build.

In: a folder a command is about to write into (`build`, `mix`, `ingest`, `chunk`,
`audit`, `publish` take a build folder). Out: nothing, or `ReleaseFolderError` (exit 2) when the
folder is a published release: it holds the marker `publish` writes (`RELEASE_MARKER`),
or a `provenance.json` with a `release` section (releases made before the marker, and
the Hub's). `show`, `eval` and `export-*` read releases and never call this.
"""

from __future__ import annotations

import json
from pathlib import Path

from vlm_autodrive.builders.core.errors import InputError
from vlm_autodrive.builders.core.files import write_json

RELEASE_MARKER = ".autodrive-release.json"


class ReleaseFolderError(InputError):
    """A writing command was given a published release folder."""


def mark_release(folder: Path, version: str) -> None:
    """Write the read-only marker into a release folder `publish` just made."""
    write_json(Path(folder) / RELEASE_MARKER, {"release": version, "read_only": True})


def release_version(folder: Path) -> str | None:
    """The version of the release `folder` holds, or None when it is not a release."""
    folder = Path(folder)
    marker = _read(folder / RELEASE_MARKER)
    if marker is not None:
        return str(marker.get("release") or "?")
    info = (_read(folder / "provenance.json") or {}).get("release")
    return str(info.get("version") or "?") if isinstance(info, dict) else None


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def refuse_release_folder(folder: Path) -> None:
    """ReleaseFolderError when `folder` is a published release (see the module)."""
    version = release_version(folder)
    if version is None:
        return
    raise ReleaseFolderError(
        folder,
        f"is the published release v{version}, which is read-only: build, mix, ingest, "
        "chunk, audit and publish write into build folders only. Run the command on the build "
        "folder the release was published from (then publish a new version); `autodrive "
        "show`, `eval` and `export-*` read a release folder as it is",
    )
