"""`autodrive audit BUILD`: is the dataset any good? (issue 25, item 1)

In: a build folder (after the rule splits; the model splits, clips and sources are used
when present). Out: an `AuditReport`, written to `BUILD/audit/`: `report.json` (every
table), `report.md` (the same for people), PNG plots, and `file_hashes.parquet` (the
sha256 and perceptual hash of each source and clip file, reused while a file's size and
modification time hold). Nothing else in the build folder is touched.

The audit: blind baselines per multiple-choice config (blind.py), duplicate sources,
clips and questions (duplicates.py), statistics per config, side and class, the
generation yield and the videos (stats.py). Same build, same report bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.audit.blind import blind_audit, multiple_choice_configs, read_rows
from vlm_autodrive.builders.audit.duplicates import (
    HASH_CACHE,
    HashCache,
    clip_duplicates,
    question_duplicates,
    source_duplicates,
    video_sides,
)
from vlm_autodrive.builders.audit.letters import letter_balance
from vlm_autodrive.builders.audit.phash import DEFAULT_THRESHOLD, FRAMES
from vlm_autodrive.builders.audit.report import AuditReport
from vlm_autodrive.builders.audit.stats import (
    config_stats,
    read_config_rows,
    stats_configs,
    token_counter,
    video_stats,
    yield_rows,
)
from vlm_autodrive.builders.core.files import (
    file_sha256,
    read_json,
    write_json_if_changed,
    write_text_if_changed,
)
from vlm_autodrive.builders.core.stage import Stage, content_key
from vlm_autodrive.builders.dataset.folder import PROVENANCE

AUDIT_DIR = "audit"
# Measured on the 12-video synthetic sample (calibrate.py; README "Audit a build").
CALIBRATION = (
    "0 of 66 pairs of different synthetic videos within the threshold (closest 0.091); "
    "12 of 12 copies re-encoded at half size, CRF 30, GOP 48 found (farthest 0.007)"
)


def _table(path: Path, columns: list[str]) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    if not path.is_file():
        return []
    have = set(pq.read_schema(path).names)
    return pq.read_table(path, columns=[c for c in columns if c in have]).to_pylist()


def run_audit(
    build_dir: Path,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    perceptual: bool = True,
    ask: Callable[[list[tuple[str, list[str]]]], list[str | None]] | None = None,
    plots: bool = True,
    declared: str | None = None,
) -> AuditReport:
    """Audit the build folder and write `BUILD/audit/` (see the module).

    `threshold`: perceptual distance at or below which two sources are near-duplicates;
    `perceptual` False hashes bytes only (no frame is decoded); `ask([(question,
    options), ...]) -> [letter or None, ...]`: a text-only model for the model baseline
    (`model.backend_answerer(backend)`; None: not run);
    `plots` False writes no PNG; `declared`: the pipeline's key of the stage's declared
    inputs (None: derived here). FileNotFoundError when the folder is no build."""
    build_dir = Path(build_dir)
    if not (build_dir / PROVENANCE).is_file():
        raise FileNotFoundError(f"{build_dir}: no {PROVENANCE}: not a build folder")
    out = build_dir / AUDIT_DIR
    stage = Stage(build_dir, AUDIT_DIR)
    key = None if ask else audit_key(build_dir, threshold, perceptual, plots, declared)
    if key is not None and stage.finished(key) is not None:
        report = AuditReport.from_dict(read_json(out / "report.json"))
        report.notes.append("up to date: nothing changed since the last audit")
        _rewrite_card(build_dir)
        return report
    stage.invalidate()
    report = AuditReport(build=build_dir.name)
    count, tokens = token_counter(build_dir)
    report.settings = {
        "tokens": tokens,
        "near_duplicate_threshold": threshold,
        "perceptual_hash": f"{FRAMES} frames, 8x8 low DCT of 32x32 grey, cosine"
        if perceptual
        else "off (bytes only)",
        "threshold_calibration": CALIBRATION,
        "text_model_baseline": (
            f"run ({getattr(ask, 'model_id', 'a text model')}, test questions without the video)"
            if ask
            else "not run (no text model given)"
        ),
        "out": f"{build_dir.name}/{AUDIT_DIR}",
    }
    skipped: dict[str, dict[str, int]] = {}
    for config, files in multiple_choice_configs(build_dir).items():
        rows = read_rows(build_dir, files)
        scores, flags, skip = blind_audit(config, rows, ask)
        report.baselines += scores
        report.leaks += flags
        report.letter_balance += letter_balance(config, rows)
        report.question_duplicates += question_duplicates(config, rows)
        if skip:
            skipped[config] = skip
    for config, files in stats_configs(build_dir).items():
        report.config_stats += config_stats(config, read_config_rows(build_dir, files), count)
    report.yields = yield_rows(build_dir)
    _videos_and_duplicates(build_dir, out, report, threshold, perceptual)
    report.counts["rows_not_scored"] = skipped
    out.mkdir(parents=True, exist_ok=True)
    if plots:
        from vlm_autodrive.builders.audit.plots import write_plots

        report.plots = [f"{AUDIT_DIR}/{p.name}" for p in write_plots(report, out)]
    write_json_if_changed(out / "report.json", report.to_dict())
    write_text_if_changed(out / "report.md", report.markdown())
    if key is not None:
        outputs = [f"{AUDIT_DIR}/report.json", f"{AUDIT_DIR}/report.md", *report.plots]
        from vlm_autodrive.builders.pipeline import upstream_outputs

        summary = {"leaks": len(report.leaks), "letter_imbalance": len(report.letter_flags)}
        # what it read, for publish to compare with the upstream stamps then
        stage.commit(key, outputs, summary, upstream_outputs("audit", build_dir))
    _rewrite_card(build_dir)
    return report


def _rewrite_card(build_dir: Path) -> None:
    """The dataset card again, now with the audit's section (written only if it changed)."""
    from vlm_autodrive.builders.dataset.folder import CARD, render_card

    write_text_if_changed(
        build_dir / CARD, render_card(build_dir, read_json(build_dir / PROVENANCE))
    )


def audit_key(
    build_dir: Path, threshold: float, perceptual: bool, plots: bool, declared: str | None = None
) -> str:
    """What the audit is made from: the pipeline's key of its declared inputs (the
    recorded outputs of the stages it reads and the audit's code; builders/pipeline.py),
    the build's tables and provenance (their sha256), every source and clip file's size
    and modification time (by id and relative path, never an absolute path), and the
    settings. Equal keys: the last report stands (no work)."""
    import os

    if declared is None:
        from vlm_autodrive.builders.pipeline import declared_key

        declared = declared_key("audit", {}, None, build_dir)
    tables = ["provenance.json", "ingest/videos.parquet", "chunk/clips.parquet",
              "split/assignment.parquet", "model_splits/stamp.json"]  # fmt: skip
    files = {t: file_sha256(build_dir / t) for t in tables if (build_dir / t).is_file()}
    videos = _table(build_dir / "ingest" / "videos.parquet", ["video_id", "path"])
    clips = _table(build_dir / "chunk" / "clips.parquet", ["path"])
    named = [(v["video_id"], v["path"]) for v in videos]
    named += [(c["path"], str(build_dir / c["path"])) for c in clips]
    states = []
    for name, p in named:
        try:
            st = os.stat(p)
            states.append((name, st.st_size, st.st_mtime_ns))
        except OSError:
            states.append((name, None, None))
    settings = {"threshold": threshold, "perceptual": perceptual, "plots": plots}
    return content_key(
        {"declared": declared, "files": files, "media": content_key(states), "settings": settings}
    )


def _videos_and_duplicates(build_dir, out, report, threshold, perceptual) -> None:
    videos = _table(
        build_dir / "ingest" / "videos.parquet",
        ["video_id", "path", "label", "duration", "sha256", "perceptual_signature"],
    )
    clips = _table(
        build_dir / "chunk" / "clips.parquet",
        ["clip_id", "video_id", "path", "label", "start", "end"],
    )
    assignment = _table(
        build_dir / "split" / "assignment.parquet", ["clip_id", "video_id", "split"]
    )
    clip_side = {a["clip_id"]: a["split"] for a in assignment}
    for name, table in (("ingest/videos.parquet", videos), ("chunk/clips.parquet", clips)):
        if not table:
            report.notes.append(f"no {name}: no video statistics or duplicates from it")
    report.videos = video_stats(videos, clips, clip_side)
    cache = HashCache(out / HASH_CACHE)
    groups, src = source_duplicates(videos, video_sides(assignment), cache, threshold, perceptual)
    clip_groups, clp = clip_duplicates(build_dir, clips, clip_side, cache)
    report.duplicates = groups + clip_groups
    report.counts["files"] = {"sources": src, "clips": clp}
    report.files_read = cache.read
    for name, c in (("source videos", src), ("clips", clp)):
        if c.get("missing"):
            report.notes.append(f"{c['missing']} {name} missing: not hashed")
        if c.get("unreadable"):
            report.notes.append(f"{c['unreadable']} {name} could not be decoded: bytes only")
    if cache.read or not cache.path.exists():
        cache.save()
