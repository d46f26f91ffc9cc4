"""Before a release: every file is what its stage recorded, and no stage is stale.

In: a build folder and the files a release takes from it (`ReleaseFiles.files`). Checked,
cheapest first, each refusal a `ReleaseError` (exit 2) naming the file or the stage and
the command that makes it right:

- every output a stage stamp records (`BUILD/<stage>/stamp.json`, core/stage.py) is there
  with the recorded sha256 (a changed table);
- every clip of the release is the file the chunk stage cut: its part
  (`chunk/parts/<video_id>.json`, clips/parts.py) records each clip's size, modification
  time and sha256; the size is compared first, the sha256 only when the modification time
  moved (a truncated or altered clip);
- every stage was made from the upstream outputs that are current: the hashes a stage
  recorded of what it read (its stamp's `inputs`; for the rule splits also
  `provenance.json`'s `stages.rule_splits.inputs`) equal those the upstream stage's stamp
  records now (relabel + `autodrive ingest` + `autodrive chunk`, then publish: the rule
  splits were made from the old clip table).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.files import file_sha256, read_json
from vlm_autodrive.builders.core.freshness import (
    STAGES,
    first_stale_stage,
    recorded_outputs,
    stage_stamps,
)
from vlm_autodrive.builders.core.stage import STAMP
from vlm_autodrive.builders.release.staging import ReleaseError

REBUILD = "autodrive build RECIPE --build {build}"


def check_recorded(build_dir: Path, files: Iterable[str], prov: dict[str, Any]) -> dict[str, str]:
    """Refuse (ReleaseError) a build whose files or stages are not as recorded (see the
    module docstring); `files` are the release's paths relative to `build_dir`. Returns
    {clip: sha256} of the clips verified against their chunk part's recorded sha256 (the
    release's SHA256SUMS takes them from there instead of hashing them again)."""
    build_dir = Path(build_dir)
    stamps = stage_stamps(build_dir)
    _check_outputs(build_dir, stamps)
    verified = _check_clips(build_dir, [f for f in files if f.startswith("clips/")])
    _check_upstream(build_dir, stamps, prov)
    check_audit(build_dir, stamps)
    return verified


def _command(stage: str, build_dir: Path) -> str:
    if stage.startswith("mix/"):
        return f"autodrive mix RECIPE --build {build_dir}"
    return REBUILD.format(build=build_dir)


def _check_outputs(build_dir: Path, stamps: dict[str, dict[str, Any]]) -> None:
    for stage, stamp in stamps.items():
        for rel, sha in (stamp.get("outputs") or {}).items():
            path = build_dir / rel
            if not path.is_file() or file_sha256(path) != sha:
                what = "is missing" if not path.is_file() else "changed"
                raise ReleaseError(
                    f"{path} {what} since the {stage} stage wrote it (its stamp records "
                    f"sha256 {sha[:12]}): run `{_command(stage, build_dir)}` to make it "
                    "again, then publish"
                )


def _check_clips(build_dir: Path, clips: list[str]) -> dict[str, str]:
    """Every clip is the size (and, when its modification time moved, the sha256) its
    chunk part recorded. Clips without a part record (builds made before parts recorded
    their files) are checked by publish's own missing/empty test only. Returns {clip:
    sha256} of the clips whose recorded sha256 held."""
    from vlm_autodrive.builders.clips.parts import clip_intact, read_memo, recorded_file

    parts: dict[str, dict] = {}
    memo = read_memo(build_dir)  # read only: publish writes nothing into the build
    bad = []
    verified = {}
    for rel in clips:
        video = rel.split("/")[1] if rel.count("/") >= 2 else ""
        if video not in parts:
            try:
                parts[video] = read_json(build_dir / "chunk" / "parts" / f"{video}.json")
            except (OSError, ValueError):
                parts[video] = {}
        size, sha = recorded_file(parts[video], rel)
        if size is None:
            continue
        st = (build_dir / rel).stat()
        if st.st_size != size:
            bad.append(f"{rel} ({st.st_size} bytes; the chunk stage cut {size})")
        elif not clip_intact(build_dir, rel, size, sha, memo):
            bad.append(f"{rel} (same size, other bytes than the chunk stage cut)")
        elif sha is not None:
            verified[rel] = sha
    if bad:
        raise ReleaseError(
            f"{build_dir}: {len(bad)} clips the release holds are not the files the chunk "
            f"stage cut: {'; '.join(bad[:3])}. Run `{REBUILD.format(build=build_dir)}`: it "
            "re-cuts them (the same bytes as before), then publish"
        )
    return verified


def _check_upstream(
    build_dir: Path, stamps: dict[str, dict[str, Any]], prov: dict[str, Any]
) -> None:
    """Each stage's recorded inputs against the outputs their stages record now."""
    stale = first_stale_stage(stamps, prov)
    if stale is not None:
        raise ReleaseError(
            f"{build_dir}: the {stale.stage} stage was made from an older {stale.input} (the "
            f"{stale.upstream} stage has run since): run `{_command(stale.stage, build_dir)}` "
            f"to make the {stale.stage} stage again from it, then publish"
        )


AUDIT = "audit"
AUDIT_FIX = "`autodrive audit {build}` (or `autodrive build RECIPE --build {build}`)"


def check_audit(build_dir: Path, stamps: dict[str, dict[str, Any]] | None = None) -> None:
    """Refuse (ReleaseError) to publish the build's audit (`audit/report.json`; a build
    without one publishes without it) unless it is current: its stamp (`audit/stamp.json`)
    is there, the report files are the ones it records, the upstream outputs it records
    having read (its `inputs`, when it records them) are those their stages record now,
    and no upstream stage (ingest, chunk, rule splits, model splits) wrote its stamp after
    the audit's unless the audit's key is still the one `autodrive audit` computes now
    for the same settings (builders/audit/stage.py `audit_key`: the upstream outputs, the
    tables, the clips' and sources' sizes and times, its code): then a new audit would be
    the same. A mixture made since does not make it stale: the audit leaves mixtures out."""
    build_dir = Path(build_dir)
    report_path = build_dir / AUDIT / "report.json"
    if not report_path.is_file():
        return
    stamps = stage_stamps(build_dir) if stamps is None else stamps
    fix = AUDIT_FIX.format(build=build_dir)
    try:
        stamp = read_json(build_dir / AUDIT / STAMP)
        report = read_json(report_path)
    except (OSError, ValueError):
        stamp = report = None
    if not isinstance(stamp, dict) or "audit/report.json" not in (stamp.get("outputs") or {}):
        raise ReleaseError(
            f"{report_path} has no stamp recording what it was made from (an audit run "
            f"with --text-model records none, and a stopped one neither): run {fix} to "
            "publish the audit with the release, or delete the audit folder to publish "
            "without it"
        )
    for rel, sha in stamp["outputs"].items():
        if not (build_dir / rel).is_file() or file_sha256(build_dir / rel) != sha:
            raise ReleaseError(
                f"{build_dir / rel} changed since the audit wrote it: run {fix}, then publish"
            )
    made_by = recorded_outputs(stamps)
    for rel, sha in sorted((stamp.get("inputs") or {}).items()):
        if rel in made_by and made_by[rel][1] != sha:
            raise ReleaseError(
                f"{build_dir}: the audit was made from an older {rel} (the "
                f"{made_by[rel][0]} stage has run since): run {fix} to audit the build "
                "as it is, then publish"
            )
    if "inputs" in stamp:  # recorded (audits since they record them): checked exactly
        return
    # A stamp without `inputs` (an older audit): an upstream stage that wrote its stamp
    # after the audit's made it stale, unless the audit would find nothing to do now (same
    # key: the same upstream outputs, tables and files as it read). A mixture is no input
    # of the audit.
    audited = (build_dir / AUDIT / STAMP).stat().st_mtime_ns
    newer = [
        s for s in STAGES if s in stamps and (build_dir / s / STAMP).stat().st_mtime_ns > audited
    ]
    if newer and stamp.get("key") not in _audit_keys(build_dir, report):
        raise ReleaseError(
            f"{report_path} is out of date: the {' and '.join(newer)} "
            f"stage{'s' if len(newer) > 1 else ''} ran again since the audit: run {fix} to "
            "audit the build as it is, then publish"
        )


def _audit_keys(build_dir: Path, report: Any) -> set[str]:
    """The keys `autodrive audit BUILD` and `autodrive build` would give the audit now,
    with the settings its report records (threshold, perceptual hashing, plots)."""
    from vlm_autodrive.builders.audit.stage import audit_key
    from vlm_autodrive.builders.pipeline import declared_key

    settings = (report.get("settings") if isinstance(report, dict) else None) or {}
    threshold = settings.get("near_duplicate_threshold")
    perceptual = not str(settings.get("perceptual_hash", "")).startswith("off")
    try:
        recipe = read_json(build_dir / "provenance.json").get("recipe") or {}
    except (OSError, ValueError, AttributeError):
        recipe = {}
    declared = {declared_key(AUDIT, {}, None, build_dir)}  # `autodrive audit BUILD`
    if isinstance(recipe, dict) and recipe.get(AUDIT) is not None:  # the build's walk
        declared.add(declared_key(AUDIT, {AUDIT: recipe[AUDIT]}, None, build_dir))
    return {
        audit_key(build_dir, threshold, perceptual, plots, d)
        for d in declared
        for plots in (True, False)
    }
