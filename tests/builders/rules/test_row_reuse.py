"""The rule splits' per-clip row reuse (builders/rules/row_reuse.py): after a one-video
edit only the clips whose own inputs changed (its clips, and clips the global assignment
moved to the other side) have their rows computed; the folder holds the bytes a build
from scratch writes; a snapshot that was altered, or a template edit, computes all."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.builders.small_builds import relabel_one_video, rule_build
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.rules import rule_tables
from vlm_autodrive.builders.rules.render_memo import MEMO
from vlm_autodrive.builders.rules.row_reuse import SNAPSHOT
from vlm_autodrive.builders.rules.stage import RuleSplitsConfig, build_rule_splits
from vlm_autodrive.resources import bundled

VIDEOS = 40
CONFIGS = ("mcq", "caption_metadata", "cause_vqa")


def config(templates: Path | None = None, seed: int = 0) -> RuleSplitsConfig:
    folder = str(templates) if templates else None
    return RuleSplitsConfig(test_per_class=2, templates=folder, configs=list(CONFIGS), seed=seed)


def rebuild(build: Path, monkeypatch, cfg: RuleSplitsConfig | None = None) -> set[str]:
    """The rule splits again; the clips whose mcq rows were computed (not kept)."""
    computed: set[str] = set()
    original = rule_tables.build_mcq

    def counting(clips, *args, **kwargs):
        clips = list(clips)
        computed.update(c["clip_id"] for c in clips)
        return original(clips, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(rule_tables, "build_mcq", counting)
        build_rule_splits(build, cfg or config(), load_taxonomy(), {})
    return computed


def outputs(build: Path) -> dict[str, bytes]:
    """The data files, the assignment, the summary, the render memo and the row snapshot
    (both whole: the kept clips' renders are carried over), by path."""
    files = sorted((build / "data").rglob("*.parquet"))
    files += [build / "split" / "assignment.parquet", build / "rule_splits" / "summary.json"]
    files += [build / MEMO, build / SNAPSHOT]
    return {p.relative_to(build).as_posix(): p.read_bytes() for p in files}


def from_scratch(build: Path, tmp_path: Path, monkeypatch, cfg=None) -> dict[str, bytes]:
    """What a build of the same tables without any memo or snapshot writes."""
    fresh = tmp_path / "fresh"
    shutil.rmtree(fresh, ignore_errors=True)
    for part in ("ingest", "chunk"):
        shutil.copytree(build / part, fresh / part)
    rebuild(fresh, monkeypatch, cfg)
    return outputs(fresh)


def sides(build: Path) -> dict[str, str]:
    t = pq.read_table(build / "split" / "assignment.parquet")
    return dict(zip(t["clip_id"].to_pylist(), t["split"].to_pylist(), strict=True))


def clips_of(build: Path, video_id: str) -> set[str]:
    t = pq.read_table(build / "chunk" / "clips.parquet", columns=["clip_id", "video_id"])
    return {c for c, v in zip(*(t[n].to_pylist() for n in t.column_names)) if v == video_id}


def clip_labels(build: Path) -> dict[str, str]:
    t = pq.read_table(build / "chunk" / "clips.parquet", columns=["clip_id", "label"])
    return dict(zip(t["clip_id"].to_pylist(), t["label"].to_pylist(), strict=True))


def sided(build: Path) -> set[str]:
    return {c for c, s in sides(build).items() if s != "held_out"}


def relabel_test_video(build: Path) -> str:
    """A Near-Collision video of the test side relabelled Collision, in its ingest row and
    event clips (as ingest and chunk write them): its class then needs another test video,
    so clips of other videos change sides. Its id."""
    t = pq.read_table(build / "split" / "assignment.parquet").to_pylist()
    vid = min(r["video_id"] for r in t if r["label"] == "Near-Collision" and r["split"] == "test")
    path = build / "ingest" / "videos.parquet"
    videos = pq.read_table(path).to_pylist()
    v = next(x for x in videos if x["video_id"] == vid)
    v["label"], v["fingerprint"] = "Collision", "edited"
    pq.write_table(pa.Table.from_pylist(videos, schema=pq.read_schema(path)), path)
    path = build / "chunk" / "clips.parquet"
    clips = pq.read_table(path).to_pylist()
    for c in clips:
        if c["video_id"] == vid and c["label"] == "Near-Collision":
            c["label"] = "Collision"
    pq.write_table(pa.Table.from_pylist(clips, schema=pq.read_schema(path)), path)
    return vid


def test_relabel_computes_its_clips_and_the_moved_ones_only(tmp_path, monkeypatch):
    build = rule_build(tmp_path / "build", videos=VIDEOS)
    rebuild(build, monkeypatch)  # with every config
    before, labels = sides(build), clip_labels(build)
    video = relabel_test_video(build)
    relabelled = {c for c, k in clip_labels(build).items() if labels[c] != k}
    computed = rebuild(build, monkeypatch)
    after = sides(build)
    moved = {c for c in before.keys() & after.keys() if before[c] != after[c]}
    assert relabelled and relabelled <= clips_of(build, video)
    assert moved - clips_of(build, video), "the relabel should move other videos' clips"
    # The video's other clips keep their rows: rows read the clip's label, not the video's.
    assert computed == (relabelled | moved) & sided(build)
    assert len(computed) < len(sided(build)) / 4
    assert outputs(build) == from_scratch(build, tmp_path, monkeypatch)


def test_metadata_edit_computes_that_videos_clips_only(tmp_path, monkeypatch):
    build = rule_build(tmp_path / "build", videos=VIDEOS)
    rebuild(build, monkeypatch)
    path = build / "ingest" / "videos.parquet"
    videos = pq.read_table(path).to_pylist()
    v = next(x for x in videos if x["metadata"]["weather"] != "snow")
    v["metadata"]["weather"] = "snow"
    pq.write_table(pa.Table.from_pylist(videos, schema=pq.read_schema(path)), path)
    before = outputs(build)
    computed = rebuild(build, monkeypatch)
    assert computed == clips_of(build, v["video_id"]) & sided(build)
    assert computed
    after = outputs(build)
    assert after == from_scratch(build, tmp_path, monkeypatch)
    assert after != before  # the captions say snow now


def test_altered_snapshot_is_not_used(tmp_path, monkeypatch):
    build = rule_build(tmp_path / "build", videos=20)
    rebuild(build, monkeypatch)
    snap = pq.read_table(build / SNAPSHOT)
    other = "train" if snap["side"][0].as_py() == "test" else "test"
    pq.write_table(snap.set_column(5, "side", pa.array([other] * snap.num_rows)), build / SNAPSHOT)
    relabel_one_video(build)
    computed = rebuild(build, monkeypatch)
    assert computed == sided(build)  # every row computed
    assert outputs(build) == from_scratch(build, tmp_path, monkeypatch)


def test_template_and_seed_edits_compute_every_row(tmp_path, monkeypatch):
    build = rule_build(tmp_path / "build", videos=20)
    rebuild(build, monkeypatch)
    folder = tmp_path / "templates"
    shutil.copytree(bundled("templates"), folder)
    mcq = folder / "mcq.jinja"
    mcq.write_text(mcq.read_text() + "{# an edit #} ")
    assert rebuild(build, monkeypatch, config(folder)) == sided(build)
    assert outputs(build) == from_scratch(build, tmp_path, monkeypatch, config(folder))
    assert rebuild(build, monkeypatch, config(folder, seed=1)) == sided(build)
    assert outputs(build) == from_scratch(build, tmp_path, monkeypatch, config(folder, seed=1))


def test_altered_data_file_is_not_used(tmp_path, monkeypatch):
    build = rule_build(tmp_path / "build", videos=20)
    rebuild(build, monkeypatch)
    train = next((build / "data" / "mcq").glob("train-*.parquet"))
    table = pq.read_table(train)
    column = table.schema.get_field_index("answer")
    pq.write_table(table.set_column(column, "answer", pa.array(["Z"] * table.num_rows)), train)
    relabel_one_video(build)
    assert rebuild(build, monkeypatch) == sided(build)  # the stamp's outputs are not intact
    assert outputs(build) == from_scratch(build, tmp_path, monkeypatch)


def test_dry_run_computes_what_the_run_computes_and_writes_nothing(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from vlm_autodrive.builders.generate.preview import preview_rules

    build = rule_build(tmp_path / "build", videos=VIDEOS)
    rebuild(build, monkeypatch)
    relabel_test_video(build)
    files = {p: p.read_bytes() for p in build.rglob("*") if p.is_file()}
    planned: set[str] = set()
    original = rule_tables.build_mcq

    def counting(clips, *args, **kwargs):
        clips = list(clips)
        planned.update(c["clip_id"] for c in clips)
        return original(clips, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(rule_tables, "build_mcq", counting)
        preview_rules(build, SimpleNamespace(rules=config()), load_taxonomy())
    assert {p: p.read_bytes() for p in build.rglob("*") if p.is_file()} == files
    assert planned and planned == rebuild(build, monkeypatch)
    assert len(planned) < len(sided(build)) / 4


def test_a_clip_twice_or_missing_is_a_count_error(tmp_path, monkeypatch):
    import pytest

    from vlm_autodrive.builders.core.stage import CountError
    from vlm_autodrive.builders.dataset.folder import data_path

    build = rule_build(tmp_path / "build", videos=20)
    clip_sides = {c: s for c, s in sides(build).items() if s != "held_out"}
    mcq = {s: pq.read_table(data_path(build, "mcq", s)) for s in ("train", "test")}
    clips = [{"clip_id": c, "label": "Normal Driving"} for c in clip_sides]
    rule_tables.tally_rows({"mcq": mcq}, clips, clip_sides, load_taxonomy())  # as built
    twice = dict(mcq, train=pa.concat_tables([mcq["train"], mcq["train"].slice(0, 1)]))
    with pytest.raises(CountError, match="more than one row"):
        rule_tables.tally_rows({"mcq": twice}, clips, clip_sides, load_taxonomy())
    short = dict(mcq, train=mcq["train"].slice(1))
    with pytest.raises(CountError, match="rows for"):
        rule_tables.tally_rows({"mcq": short}, clips, clip_sides, load_taxonomy())
