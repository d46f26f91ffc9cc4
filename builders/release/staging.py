"""One release of a build folder: which files it has, and its folder (staged or local).

In: a build folder (after `autodrive build` and any `autodrive mix`). Out:

- `release_files`: the files a release holds, relative to the build folder: every
  config's Parquet files, the train/test assignment, the mixtures' plots, and the clips
  the rows reference (clips of held-out videos that no row uses stay home). Build
  internals (ingest/, chunk/, caches) are not published. Checked first: every file
  exists, and no mixture was made from rows that have since been rebuilt.
- `stage_release`: the release folder `DEST` with the same layout as the build folder
  (files hard-linked where the filesystem allows, else copied) plus three files written
  for the release: `README.md` (the card, with the version, loading pinned to the tag and
  the changelog), `provenance.json` (the build's, plus the release) and `changelog.json`.

The local publish target is such a folder, `FOLDER/vX.Y.Z/`, written under a temporary
name and renamed when whole; the Hub upload sends a staged one.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.files import atomic_write_text, read_json, write_json
from vlm_autodrive.builders.dataset.card import Release, render_card
from vlm_autodrive.builders.dataset.folder import CARD, PROVENANCE
from vlm_autodrive.builders.release.changelog import Changelog, compare
from vlm_autodrive.builders.release.semver import Version, version_from_tag

CHANGELOG = "changelog.json"
GENERATED = (CARD, PROVENANCE, CHANGELOG)
ASSIGNMENT = "split/assignment.parquet"
STAGING = ".release"


class ReleaseError(ValueError):
    """A build that cannot be released as it is; the message says what to do."""


@dataclass
class ReleaseFiles:
    """The files of a release taken from the build folder (sorted), and their size."""

    build_dir: Path
    prov: dict[str, Any]
    files: list[str]
    size: int

    @property
    def all_paths(self) -> list[str]:
        """Every path of the release: the copied files and the generated ones."""
        return sorted([*self.files, *GENERATED])


def release_files(build_dir: Path) -> ReleaseFiles:
    """What a release of `build_dir` holds; ReleaseError when the build is not ready."""
    import pyarrow.parquet as pq

    build_dir = Path(build_dir)
    if not (build_dir / PROVENANCE).exists():
        raise ReleaseError(f"{build_dir / PROVENANCE} not found: nothing built to publish")
    prov = read_json(build_dir / PROVENANCE)
    if not prov.get("configs"):
        raise ReleaseError(f"{build_dir}: no configs to publish")
    _check_mixtures_fresh(prov)
    files: set[str] = set()
    clips: set[str] = set()
    for entry in prov["configs"].values():
        for split in entry["splits"].values():
            files.add(split["path"])
            path = build_dir / split["path"]
            if path.exists() and "video" in pq.read_schema(path).names:
                col = pq.read_table(path, columns=["video"]).column("video").unique()
                clips.update(v for v in col.to_pylist() if v)
    for info in prov.get("stages", {}).values():
        if info.get("kind") == "mixture" and info.get("plot"):
            files.add(info["plot"])
    if (build_dir / ASSIGNMENT).exists():
        files.add(ASSIGNMENT)
    missing = sorted(f for f in files if not (build_dir / f).is_file())
    missing_clips = sorted(c for c in clips if not (build_dir / c).is_file())
    if missing or missing_clips:
        lines = [f"{build_dir}: files the release needs are missing:"]
        lines += [f"  {f}" for f in missing[:10]]
        if missing_clips:
            lines.append(
                f"  {len(missing_clips)} clips the rows reference, e.g. "
                + ", ".join(missing_clips[:3])
                + " (run the chunk stage again: it re-cuts what is missing)"
            )
        raise ReleaseError("\n".join(lines))
    allf = sorted(files | clips)
    size = sum((build_dir / f).stat().st_size for f in allf)
    return ReleaseFiles(build_dir, prov, allf, size)


def _check_mixtures_fresh(prov: dict[str, Any]) -> None:
    """A mixture records the hashes of the files it read; they must still be current."""
    stale = []
    for info in prov.get("stages", {}).values():
        if info.get("kind") != "mixture" or info.get("config") not in prov["configs"]:
            continue
        for config, sides in info.get("inputs", {}).items():
            now = prov["configs"].get(config, {}).get("splits", {})
            if any(now.get(s, {}).get("sha256") != sha for s, sha in sides.items()):
                stale.append(f"{info['config']} (made from older {config} rows)")
    if stale:
        raise ReleaseError(
            "mixtures out of date: " + "; ".join(stale) + ". Run `autodrive mix RECIPE "
            "--build DIR` again for each, then publish."
        )


def local_versions(root: Path) -> dict[Version, Path]:
    """The release folders `vX.Y.Z` in a local publish target."""
    if not Path(root).is_dir():
        return {}
    out = {}
    for p in Path(root).iterdir():
        v = version_from_tag(p.name)
        if v is not None and p.is_dir():
            out[v] = p
    return out


def stage_release(
    rf: ReleaseFiles,
    dest: Path,
    version: Version,
    *,
    repo: str | None,
    license: str,
    previous: tuple[str, Path] | None,
) -> Changelog:
    """Fill `dest` with the release (see the module docstring); return its changelog.

    `previous` is (version, folder) of the release to compare with, or None for the
    first. Files already in `dest` from an earlier attempt are replaced, and files that
    are no longer part of the release are removed, so a re-run stages exactly this one.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    keep = set(rf.files)
    for p in sorted(dest.rglob("*"), reverse=True):
        rel = p.relative_to(dest).as_posix()
        if rel.startswith(".cache/") or rel == ".cache":
            continue  # the uploader's resume state
        if p.is_file() and rel not in keep:
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()
    for rel in rf.files:
        _link_or_copy(rf.build_dir / rel, dest / rel)
    log = compare(dest, previous[1] if previous else None, str(version), _prev(previous))
    log.write(dest / CHANGELOG)
    prov = dict(rf.prov)
    prov["release"] = {
        "version": str(version),
        "tag": version.tag,
        "repo": repo,
        "license": license,
        "previous": _prev(previous),
        "files": len(rf.files) + len(GENERATED),
    }
    write_json(dest / PROVENANCE, prov)
    release = Release(str(version), repo=repo, license=license, changelog=log)
    atomic_write_text(dest / CARD, render_card(dest, prov, release))
    return log


def write_local_release(
    rf: ReleaseFiles,
    root: Path,
    version: Version,
    *,
    repo: str | None,
    license: str,
    previous: tuple[str, Path] | None,
) -> tuple[Path, Changelog]:
    """`root/vX.Y.Z/`, written under a temporary name and renamed when whole."""
    final = Path(root) / version.tag
    if final.exists():
        raise ReleaseError(f"{final} exists: version {version} is already published there")
    tmp = Path(root) / f".{version.tag}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    log = stage_release(rf, tmp, version, repo=repo, license=license, previous=previous)
    tmp.rename(final)
    return final, log


def _prev(previous: tuple[str, Path] | None) -> str | None:
    return previous[0] if previous else None


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard link (clips are never modified in place: the chunker writes new files and
    renames them), else copy; an existing `dst` of the same file is left alone."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        if os.path.samefile(src, dst):
            return
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
