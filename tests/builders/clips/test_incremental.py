"""Incremental chunking: a manifest edit re-cuts exactly the videos it touches."""

import os

import pyarrow.parquet as pq
import pytest

from tests.conftest import make_video, write_jsonl
from vlm_autodrive.builders.clips.stage import run_chunk
from vlm_autodrive.builders.core.sections import ChunkConfig
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.stage import run_ingest

TAX = load_taxonomy()
CFG = ChunkConfig(window=4, stride=3.5, margin=1.0, mode="reencode")
CRASH = {"video_id": "crash", "path": "crash.mp4", "label": "Collision", "event_time": 6.2}
CALM = {"video_id": "calm", "path": "calm.mp4", "label": "Normal Driving"}
ALSO = {"video_id": "also", "path": "also.mp4", "label": "Normal Driving"}


@pytest.fixture
def folder(tmp_path):
    for name in ("crash", "calm", "also"):
        make_video(tmp_path / f"{name}.mp4", seconds=12, size=(320, 64), gop=45)
    return tmp_path


def build(folder, rows):
    run_ingest(write_jsonl(folder / "m.jsonl", rows), folder / "build", TAX, progress=False)
    return run_chunk(folder / "build", CFG, TAX, progress=False)


def stamps(folder, video_id):
    return {p.name: p.stat().st_mtime_ns for p in (folder / "build" / "clips" / video_id).glob("*")}


def table_labels(folder):
    t = pq.read_table(folder / "build" / "chunk" / "clips.parquet").to_pylist()
    return {c["clip_id"]: c["label"] for c in t}


def test_label_edit_recuts_only_that_video_and_the_table_follows(folder):
    first = build(folder, [CRASH, CALM])
    assert first.cut_now == 2 and "Collision" in table_labels(folder).values()
    calm_before = stamps(folder, "calm")
    edited = {**CRASH, "label": "Near-Collision"}
    again = build(folder, [edited, CALM])
    assert (again.cut_now, again.recut, again.removed) == (1, 1, 0)
    labels = table_labels(folder)
    assert "Collision" not in labels.values() and "Near-Collision" in labels.values()
    assert stamps(folder, "calm") == calm_before  # untouched video: not cut again


def test_event_time_edit_moves_the_event_clip(folder):
    build(folder, [CRASH, CALM])
    event = [c for c, lab in table_labels(folder).items() if lab == "Collision"]
    res = build(folder, [{**CRASH, "event_time": 1.5}, CALM])
    assert res.recut == 1
    moved = [c for c, lab in table_labels(folder).items() if lab == "Collision"]
    assert moved and moved != event


def test_removed_video_loses_its_clips_and_rows(folder):
    build(folder, [CRASH, CALM, ALSO])
    assert (folder / "build" / "clips" / "also").is_dir()
    res = build(folder, [CRASH, CALM])
    assert (res.cut_now, res.removed) == (0, 1)
    assert not (folder / "build" / "clips" / "also").exists()
    assert not any(c.startswith("also_") for c in table_labels(folder))


def test_a_replaced_video_file_is_cut_again(folder):
    build(folder, [CRASH, CALM])
    make_video(folder / "calm.mp4", seconds=8, size=(320, 64), gop=45)
    st = os.stat(folder / "calm.mp4")
    os.utime(folder / "calm.mp4", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    res = build(folder, [CRASH, CALM])
    assert (res.cut_now, res.recut) == (1, 1)
    assert max(c.end for c in res.clips if c.video_id == "calm") <= 8.0


def test_nothing_changed_cuts_nothing(folder):
    build(folder, [CRASH, CALM])
    res = build(folder, [CRASH, CALM])
    assert (res.cut_now, res.recut, res.removed) == (0, 0, 0)
