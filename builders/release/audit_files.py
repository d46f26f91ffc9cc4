"""The build's audit as a release carries it.

In: a build folder with an audit (`BUILD/audit/`, builders/audit/stage.py). Out:
`audit_files`, the paths a release takes (`audit/report.json`, `audit/report.md` and the
plots the report lists; none when the build has no audit), and `write_scrubbed_audit`,
which writes the report into a release folder without the machine's paths or server
URLs. Whether the audit is current is verify.py's `check_audit` (publish refuses a stale
one); the card's audit section (builders/audit/report.py `card_section`) is rendered
from the release's own `audit/report.json`.
"""

from __future__ import annotations

from pathlib import Path

from vlm_autodrive.builders.core.files import atomic_write_text, read_json, write_json
from vlm_autodrive.builders.core.private import scrub_provenance

AUDIT_REPORT = "audit/report.json"
AUDIT_MARKDOWN = "audit/report.md"


def audit_files(build_dir: Path) -> set[str]:
    """The build's audit as a release carries it: report.json, report.md and the plots
    the report lists; none when the build has no audit (verify.py refuses a stale one)."""
    try:
        report = read_json(Path(build_dir) / AUDIT_REPORT)
    except (OSError, ValueError):
        return set()
    plots = report.get("plots") if isinstance(report, dict) else None
    shown = {p for p in plots or [] if isinstance(p, str) and p.startswith("audit/")}
    return {AUDIT_REPORT, AUDIT_MARKDOWN, *shown}


def write_scrubbed_audit(build_dir: Path, dest: Path, files: set[str]) -> set[str]:
    """Write the audit's report.json and report.md into `dest` without the machine's
    paths or server URLs (a duplicate group names its sources' paths): when scrubbing
    changes the report, report.md is made again from the scrubbed one. Returns the paths
    written ({} when the release has no audit, or nothing needed scrubbing: then they
    are copied as they are)."""
    if AUDIT_REPORT not in files:
        return set()
    from vlm_autodrive.builders.audit.report import AuditReport

    report = read_json(build_dir / AUDIT_REPORT)
    clean = scrub_provenance(report, build_dir)
    if clean == report:
        return set()
    for rel in (AUDIT_REPORT, AUDIT_MARKDOWN):
        (dest / rel).unlink(missing_ok=True)  # never write through a hard link
    (dest / AUDIT_REPORT).parent.mkdir(parents=True, exist_ok=True)
    write_json(dest / AUDIT_REPORT, clean)
    atomic_write_text(dest / AUDIT_MARKDOWN, AuditReport.from_dict(clean).markdown())
    return {AUDIT_REPORT, AUDIT_MARKDOWN}
