"""Whether a build folder's stages were made from the outputs their upstream stages
record now: the check `publish` (builders/release/verify.py) and `mix` share.

In: a build folder (its stages' stamps, `BUILD/<stage>/stamp.json`, core/stage.py, and
provenance.json). Out: the first stage whose recorded inputs differ from what their
stages record now (relabel + `autodrive ingest` + `autodrive chunk`: the rule splits
were made from the old clip table), or None.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.files import read_json
from vlm_autodrive.builders.core.stage import STAMP

# The stages whose stamps a build folder may hold, in pipeline order (mixtures besides,
# as mix/<name>).
STAGES = ("ingest", "chunk", "rule_splits", "model_splits")


@dataclass(frozen=True)
class StaleStage:
    """`stage` was made from an older `input` (a path in the build), which the
    `upstream` stage has written again since."""

    stage: str
    input: str
    upstream: str


def stage_stamps(build_dir: Path, mixtures: bool = True) -> dict[str, dict[str, Any]]:
    """{stage: its stamp} for every stage stamp in the build (mixtures as mix/<name>,
    unless `mixtures` is False); a stamp that cannot be read is left out."""
    build_dir = Path(build_dir)
    paths = [build_dir / s / STAMP for s in STAGES]
    if mixtures:
        paths += sorted((build_dir / "mix").glob(f"*/{STAMP}"))
    out = {}
    for path in paths:
        try:
            stamp = read_json(path)
        except (OSError, ValueError):
            continue
        if isinstance(stamp, dict):
            out[path.parent.relative_to(build_dir).as_posix()] = stamp
    return out


def recorded_outputs(stamps: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """{path in the build: (the stage that wrote it, its sha256)}, as the stamps record."""
    return {
        rel: (stage, sha)
        for stage, stamp in stamps.items()
        for rel, sha in (stamp.get("outputs") or {}).items()
    }


def first_stale_stage(stamps: dict[str, dict[str, Any]], prov: dict[str, Any]) -> StaleStage | None:
    """The first stage, in pipeline order (mixtures last), whose recorded inputs (its
    stamp's `inputs`; for the rule splits also provenance.json's
    `stages.rule_splits.inputs`) differ from the outputs their stages record now."""
    made_by = recorded_outputs(stamps)
    read: dict[str, dict[str, str]] = {
        stage: dict(stamp.get("inputs") or {}) for stage, stamp in stamps.items()
    }
    rules = ((prov.get("stages") or {}).get("rule_splits") or {}).get("inputs") or {}
    if "rule_splits" in stamps:
        read.setdefault("rule_splits", {}).update(
            {rel: sha for rel, sha in rules.items() if rel in made_by}
        )
    for stage in (*STAGES, *sorted(s for s in read if s.startswith("mix/"))):
        for rel, sha in sorted(read.get(stage, {}).items()):
            upstream = made_by.get(rel)
            if upstream is not None and upstream[1] != sha:
                return StaleStage(stage, rel, upstream[0])
    return None
