"""`autodrive show --html OUT`: a selection of rows as one static page, clips playable.

In: a `Selection` (show.py) and the page's path. Out: OUT, written atomically, rendered
from show_page.html.jinja beside this module with autoescaping on (row text is a model's
output: `<think>` must show as text, never become markup). Each row's clip is a
`<video controls>` whose `src` is the clip's path relative to the page's folder,
URL-quoted, so the page plays its clips opened from disk and served by any web server
whose root holds both; the page holds no absolute path and loads nothing from outside.
Same selection, same bytes.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from urllib.parse import quote

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from vlm_autodrive.builders.core.files import atomic_write_text
from vlm_autodrive.builders.dataset.show import Selection, ShownRow

PAGE_TEMPLATE = "show_page.html.jinja"


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    # Not core/jinja_env.py's environment: that one renders text (captions, prompts)
    # with autoescaping off; a page needs it on. StrictUndefined and the sandbox all the
    # same: the page's values are row text, a model's output.
    return ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def clip_src(build: Path, clip: str, page: Path) -> str:
    """The clip's URL relative to the page: `../build/clips/v0001/v0001_0000000.mp4`."""
    target = (build / clip).resolve()
    try:
        rel = os.path.relpath(target, page.resolve().parent)
    except ValueError:  # another drive (Windows): no relative path exists
        raise ValueError(
            f"{page}: the page must be on the same drive as the build folder {build}"
        ) from None
    return quote(Path(rel).as_posix())


def render_page(sel: Selection, page: Path) -> str:
    """The page's HTML for `sel`, its clip links relative to where `page` will be."""
    rows = [_page_row(sel.build, row, page) for row in sel.rows]
    title = f"{sel.config} · {sel.build.name}"
    template = _environment().get_template(PAGE_TEMPLATE)
    audit = _audit(sel.build, page)
    return template.render(title=title, summary=sel.summary(), rows=rows, audit=audit) + "\n"


def _audit(build: Path, page: Path) -> dict | None:
    """The build's audit aggregates (builders/audit/report.py), with its plots' URLs
    relative to the page; None when the build has no audit."""
    from vlm_autodrive.builders.audit.report import page_summary

    summary = page_summary(build)
    if summary is None:
        return None
    plots = [clip_src(build, p, page) for p in summary["plots"] if (build / p).is_file()]
    totals = sorted(
        ((r["config"], r["side"]), r["rows"]) for r in summary["rows"] if r["label"] == "all"
    )
    videos = [v for v in summary["videos"] if v["label"] == "all"]
    return {**summary, "plots": plots, "totals": totals, "by_side": videos}


def write_page(sel: Selection, page: Path) -> int:
    """Write the page (atomically); returns how many rows' clip files are missing."""
    if page.is_dir():
        raise ValueError(f"--html {page}: is a folder; give the page's file name, e.g. rows.html")
    html = render_page(sel, page)
    atomic_write_text(page, html)
    return sum(1 for r in sel.rows if r.video and not r.video_exists)


def _page_row(build: Path, row: ShownRow, page: Path) -> dict:
    fields = [
        {"label": f.label, "text": f.text, "block": f.block, "options": None} for f in row.fields
    ]
    if row.options:
        at = 1 if fields and fields[0]["label"] == "question" else 0
        opts = {"label": "options", "text": "", "block": False, "options": row.options}
        fields.insert(at, opts)
    src = clip_src(build, row.video, page) if row.video and row.video_exists else None
    return {
        "config": row.config,
        "split": row.split,
        "label": row.label,
        "id": row.id,
        "src": src,
        "clip": row.video,
        "fields": fields,
        "provenance": row.provenance,
        "extra": row.extra,
    }
