"""One release of a build folder: which files it has, and its folder (staged or local).

In: a build folder (after `autodrive build` and any `autodrive mix`). Out:

- `release_files`: the files a release holds, relative to the build folder: every
  config's Parquet files, the train/test assignment, the mixtures' plots, and the clips
  the rows reference (clips of held-out videos that no row uses stay home). Build
  internals (ingest/, chunk/, caches) are not published. Checked first: every file
  exists, and no mixture was made from rows that have since been rebuilt.
- `stage_release`: the release folder `DEST` with the same layout as the build folder
  (files copied; hard-linked only for the Hub's temporary staging folder, `link=True`)
  plus five files written for the release: `README.md` (the card, with the version,
  loading pinned to the tag and the changelog), `provenance.json` (the build's, plus the
  release), `changelog.json`, `LICENSE.md` (the terms; the card's `license_link` when
  the license is `other`) and `SHA256SUMS` (every other file's sha256, checksums.py).
  The build's audit, when it has one, goes with it (`audit/report.json`, `report.md`
  and the plots the report lists, without the machine's paths or server URLs): the
  card's audit section is rendered from it and refers to it.

The local publish target is such a folder, `FOLDER/vX.Y.Z/`, written under a temporary
name and renamed when whole. It shares no file (inode) with the build: a build file
overwritten in place later (`cp other.mp4 build/clips/...`) must not change a published
release. The Hub upload sends a staged folder (`BUILD/.release/vX.Y.Z`, hard links where
the filesystem allows): it lives only for the upload, and the upload is verified by
content against it before the tag is made.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.files import (
    atomic_write_text,
    file_sha256,
    read_json,
    write_json,
    write_parquet,
)
from vlm_autodrive.builders.core.private import scrub_provenance, scrub_text
from vlm_autodrive.builders.dataset.card import (
    LICENSE_FILE,
    Release,
    declared_sides,
    license_text,
    render_card,
)
from vlm_autodrive.builders.dataset.folder import CARD, PROVENANCE
from vlm_autodrive.builders.release.audit_files import audit_files, write_scrubbed_audit
from vlm_autodrive.builders.release.changelog import Changelog, compare
from vlm_autodrive.builders.release.checksums import SHA256SUMS, write_sums
from vlm_autodrive.builders.release.semver import Version, version_from_tag

CHANGELOG = "changelog.json"
GENERATED = (CARD, PROVENANCE, CHANGELOG, LICENSE_FILE, SHA256SUMS)
ASSIGNMENT = "split/assignment.parquet"
STAGING = ".release"


class ReleaseError(ValueError):
    """A build that cannot be released as it is; the message says what to do."""


@dataclass
class ReleaseFiles:
    """The files of a release taken from the build folder (sorted), and their size.
    `sha256`: the hashes of those files already verified against what their stage
    recorded (data files here, clips by verify.py), so SHA256SUMS need not hash them."""

    build_dir: Path
    prov: dict[str, Any]
    files: list[str]
    size: int
    sha256: dict[str, str] = field(default_factory=dict)

    @property
    def all_paths(self) -> list[str]:
        """Every path of the release: the copied files and the generated ones."""
        return sorted([*self.files, *GENERATED])


def release_files(build_dir: Path) -> ReleaseFiles:
    """What a release of `build_dir` holds; ReleaseError when the build is not ready.

    Checked before anything is sent: provenance.json parses and declares configs, the
    card declares the same configs, every config the recipe asks for is there, every data
    file is the one provenance.json recorded (sha256), the assignment exists, and every
    clip a row references exists and is not empty. Each message names the file.
    """
    import pyarrow.parquet as pq

    build_dir = Path(build_dir)
    prov = _read_provenance(build_dir)
    _check_mixtures_fresh(prov)
    _check_card(build_dir, prov)
    files: set[str] = set()
    clips: set[str] = set()
    changed = []
    verified: dict[str, str] = {}
    for entry in prov["configs"].values():
        for split in entry["splits"].values():
            files.add(split["path"])
            path = build_dir / split["path"]
            if not path.is_file():
                continue
            sha = file_sha256(path) if split.get("sha256") else None
            if sha is not None and sha != split["sha256"]:
                changed.append(split["path"])
                continue
            if sha is not None:
                verified[split["path"]] = sha
            if "video" in pq.read_schema(path).names:
                col = pq.read_table(path, columns=["video"]).column("video").unique()
                clips.update(v for v in col.to_pylist() if v)
    if changed:
        raise ReleaseError(
            f"{build_dir / PROVENANCE}: these data files changed since the stage that made "
            f"them recorded them: {', '.join(changed[:5])}; rebuild, then publish"
        )
    for info in prov.get("stages", {}).values():
        if info.get("kind") == "mixture" and info.get("plot"):
            files.add(info["plot"])
    if not (build_dir / ASSIGNMENT).is_file():
        raise ReleaseError(
            f"{build_dir / ASSIGNMENT} not found: the train/test assignment is part of every "
            "release; run `autodrive build` (the rule splits write it)"
        )
    files.add(ASSIGNMENT)
    files |= audit_files(build_dir)
    missing = sorted(f for f in files if not (build_dir / f).is_file())
    missing_clips = sorted(c for c in clips if not (build_dir / c).is_file())
    empty_clips = sorted(
        c for c in clips if c not in missing_clips and (build_dir / c).stat().st_size == 0
    )
    if missing or missing_clips or empty_clips:
        lines = [f"{build_dir}: files the release needs are missing or empty:"]
        lines += [f"  {f}" for f in missing[:10]]
        for what, bad, fix in (
            ("missing", missing_clips, "run"),
            ("empty (0 bytes)", empty_clips, "delete them and run"),
        ):
            if bad:
                lines.append(
                    f"  {len(bad)} clips the rows reference are {what}, e.g. "
                    + ", ".join(bad[:3])
                    + f" ({fix} the chunk stage again: it re-cuts what is missing)"
                )
        raise ReleaseError("\n".join(lines))
    allf = sorted(files | clips)
    size = sum((build_dir / f).stat().st_size for f in allf)
    return ReleaseFiles(build_dir, prov, allf, size, verified)


def _read_provenance(build_dir: Path) -> dict[str, Any]:
    path = build_dir / PROVENANCE
    if not path.exists():
        raise ReleaseError(f"{path} not found: nothing built to publish")
    try:
        prov = read_json(path)
    except (OSError, ValueError) as e:
        raise ReleaseError(f"{path} does not parse as JSON ({e}); rebuild the folder") from None
    if not isinstance(prov, dict) or not isinstance(prov.get("configs"), dict):
        raise ReleaseError(f"{path}: no `configs` object; rebuild the folder")
    if not prov["configs"]:
        raise ReleaseError(f"{path}: no configs to publish")
    for name, entry in prov["configs"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("splits"), dict):
            raise ReleaseError(f"{path}: configs.{name}.splits is missing; rebuild the folder")
    return prov


def _check_card(build_dir: Path, prov: dict[str, Any]) -> None:
    """The card declares exactly provenance's configs that have rows (or, written before
    configs without rows were left out, all of them: the release's card is rendered
    anew), and provenance's configs cover the recipe's."""
    import yaml

    card = build_dir / CARD
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    header: Any = None
    if text.startswith("---\n") and "\n---\n" in text[4:]:
        try:
            header = yaml.safe_load(text[4 : text.index("\n---\n", 4)])
        except yaml.YAMLError:
            header = None
    if not isinstance(header, dict):
        raise ReleaseError(f"{card}: missing, or its YAML header does not parse; rebuild")
    declared = {c.get("config_name") for c in header.get("configs") or [] if isinstance(c, dict)}
    with_rows, have = set(declared_sides(prov)), set(prov["configs"])
    if declared not in (with_rows, have):
        raise ReleaseError(
            f"{card} declares configs {sorted(declared, key=str)} but {PROVENANCE} has "
            f"{sorted(with_rows)} with rows: the card does not match the folder; rebuild"
        )
    asked = _recipe_configs(prov.get("recipe") or {})
    if asked - have:
        raise ReleaseError(
            f"{build_dir / PROVENANCE}: the recipe asks for configs {sorted(asked - have)} "
            "that the folder does not have; run `autodrive build` again"
        )


def _recipe_configs(recipe: dict[str, Any]) -> set[str]:
    # A folder built before the keys were renamed records `splits` and `generate.splits`.
    rules = recipe.get("rules") or recipe.get("splits") or {}
    gen = recipe.get("generate") or {}
    out = set(rules.get("configs") or []) if isinstance(rules, dict) else set()
    model_configs = gen.get("configs") or gen.get("splits") if isinstance(gen, dict) else None
    if model_configs:
        out |= set(model_configs) | {"failures"}
    return out


def _check_mixtures_fresh(prov: dict[str, Any]) -> None:
    """A mixture records the hashes of the files it read; they must still be current."""
    stale = []
    for info in prov.get("stages", {}).values():
        if info.get("kind") != "mixture" or info.get("config") not in prov["configs"]:
            continue
        older = [
            config
            for config, sides in info.get("inputs", {}).items()
            if any(
                prov["configs"].get(config, {}).get("splits", {}).get(s, {}).get("sha256") != sha
                for s, sha in sides.items()
            )
        ]
        if older:  # one line a mixture, naming every config it read older rows of
            stale.append(f"{info['config']} (made from older {', '.join(older)} rows)")
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
    link: bool = False,
) -> Changelog:
    """Fill `dest` with the release (see the module docstring); return its changelog.

    `previous` is (version, folder) of the release to compare with, or None for the
    first. Files already in `dest` from an earlier attempt are replaced, and files that
    are no longer part of the release are removed, so a re-run stages exactly this one.
    `link`: hard-link the build's files where the filesystem allows (the Hub's temporary
    staging folder only); else every file is a copy of its own.
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
    prov = scrub_provenance(rf.prov, rf.build_dir)
    rewritten = write_scrubbed_audit(rf.build_dir, dest, set(rf.files))
    for rel in rf.files:
        if rel in rewritten:
            continue
        if _scrubbed_copy(rf.build_dir, rel, dest, prov):
            rewritten.add(rel)
        elif link:
            _link_or_copy(rf.build_dir / rel, dest / rel)
        else:
            _copy(rf.build_dir / rel, dest / rel)
    log = compare(dest, previous[1] if previous else None, str(version), _prev(previous))
    log.write(dest / CHANGELOG)
    prov["release"] = {
        "version": str(version),
        "tag": version.tag,
        "repo": repo,
        "license": license,
        "previous": _prev(previous),
        "files": len(rf.files) + len(GENERATED),
    }
    write_json(dest / PROVENANCE, prov)
    atomic_write_text(dest / LICENSE_FILE, license_text(license).replace("## ", "# ", 1))
    release = Release(str(version), repo=repo, license=license, changelog=log)
    atomic_write_text(dest / CARD, render_card(dest, prov, release))
    known = {r: sha for r, sha in rf.sha256.items() if r not in rewritten}
    write_sums(dest, [*rf.files, *GENERATED], known)  # last: it hashes the files above
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


def _scrubbed_copy(build_dir: Path, rel: str, dest: Path, prov: dict[str, Any]) -> bool:
    """Write a data file's copy with server URLs and the build path taken out of its
    `reason` column (older builds' failures); True when it did, False when the file has
    nothing to scrub (then it is linked as it is). Updates `prov`'s hash of the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rel.endswith(".parquet") or "reason" not in pq.read_schema(build_dir / rel).names:
        return False
    t = pq.read_table(build_dir / rel)
    reasons = t.column("reason").to_pylist()
    clean = [None if r is None else scrub_text(r, build_dir) for r in reasons]
    if clean == reasons:
        return False
    t = t.set_column(t.schema.get_field_index("reason"), "reason", pa.array(clean, pa.string()))
    out = dest / rel
    out.unlink(missing_ok=True)  # never write through a hard link into the build
    write_parquet(t, out)
    for entry in prov["configs"].values():
        for split in entry["splits"].values():
            if split["path"] == rel:
                split["sha256"] = file_sha256(out)
    return True


def _prev(previous: tuple[str, Path] | None) -> str | None:
    return previous[0] if previous else None


def _copy(src: Path, dst: Path) -> None:
    """A copy of its own (copied in the kernel where it can): an existing `dst`, maybe a
    hard link into the build from an earlier staging, is removed first, never written
    through."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    shutil.copy2(src, dst)


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard link, else copy; an existing `dst` of the same file is left alone. For the
    Hub's staging folder only (temporary, verified by content after the upload): a
    local release must not share its files with the build (see the module)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        if os.path.samefile(src, dst):
            return
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
