"""The rule splits' render memo (builders/rules/render_memo.py): after a one-video edit
only that video's captions are rendered again, the folder holds the bytes a build from
scratch writes, and a memo that was altered, or made with another template, is not
trusted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.builders.small_builds import relabel_one_video, rule_build
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.rules import captions
from vlm_autodrive.builders.rules.render_memo import MEMO
from vlm_autodrive.builders.rules.row_reuse import SNAPSHOT
from vlm_autodrive.builders.rules.stage import RuleSplitsConfig, build_rule_splits
from vlm_autodrive.resources import bundled


def rebuild(build: Path, monkeypatch, templates: Path | None = None) -> int:
    """The rule splits again; how many captions were rendered."""
    renders = []
    original = captions.render_or_explain

    def counting(*args, **kwargs):
        renders.append(1)
        return original(*args, **kwargs)

    config = RuleSplitsConfig(test_per_class=2, templates=str(templates) if templates else None)
    with monkeypatch.context() as m:
        m.setattr(captions, "render_or_explain", counting)
        build_rule_splits(build, config, load_taxonomy(), {})
    return len(renders)


def data(build: Path) -> dict[str, bytes]:
    return {
        p.relative_to(build).as_posix(): p.read_bytes() for p in (build / "data").rglob("*.parquet")
    }


def from_scratch(build: Path, tmp_path: Path, monkeypatch, templates=None) -> dict[str, bytes]:
    """The data files a build of the same tables without any memo writes."""
    fresh = tmp_path / "fresh"
    shutil.rmtree(fresh, ignore_errors=True)
    for part in ("ingest", "chunk"):
        shutil.copytree(build / part, fresh / part)
    rebuild(fresh, monkeypatch, templates)
    return data(fresh)


def test_one_video_edit_renders_only_that_video(tmp_path, monkeypatch):
    build = rule_build(tmp_path / "build", videos=40)
    assert (build / MEMO).is_file()
    first = pq.read_table(build / MEMO).num_rows
    relabel_one_video(build)
    renders = rebuild(build, monkeypatch)
    assert 0 < renders <= 4, renders  # that video's event and scene captions, two blocks
    assert renders < first / 10
    assert data(build) == from_scratch(build, tmp_path, monkeypatch)


def test_altered_memo_is_not_used(tmp_path, monkeypatch):
    build = rule_build(tmp_path / "build", videos=20)
    memo = pq.read_table(build / MEMO)
    texts = ["the ego vehicle flies"] * memo.num_rows
    pq.write_table(memo.set_column(1, "text", pa.array(texts)), build / MEMO)
    (build / SNAPSHOT).unlink()  # else the rows are kept (row_reuse.py), no caption rendered
    relabel_one_video(build)
    renders = rebuild(build, monkeypatch)
    assert renders >= memo.num_rows  # every caption rendered again
    assert data(build) == from_scratch(build, tmp_path, monkeypatch)
    assert "flies" not in str(pq.read_table(build / MEMO)["text"].to_pylist())


def test_template_edit_renders_again(tmp_path, monkeypatch):
    build = rule_build(tmp_path / "build", videos=20)
    folder = tmp_path / "templates"
    shutil.copytree(bundled("templates"), folder)
    event = folder / "captions" / "detailed.jinja"  # included by caption_metadata.jinja
    event.write_text(event.read_text() + "{# an edit #} ")
    renders = rebuild(build, monkeypatch, folder)
    assert renders >= pq.read_table(build / MEMO).num_rows
    assert data(build) == from_scratch(build, tmp_path, monkeypatch, folder)
