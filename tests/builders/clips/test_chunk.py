"""Chunking: both cut modes on real (tiny) videos, labels from actual cut times, resume."""

import json
import os
import signal
import subprocess
import sys
import time

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import make_video, write_jsonl
from vlm_autodrive.builders.clips.stage import ChunkSettingsChanged, run_chunk
from vlm_autodrive.builders.core.sections import ChunkConfig
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.sources import MissingSources
from vlm_autodrive.builders.ingest.stage import run_ingest

TAX = load_taxonomy()


def _bar_width(frame) -> int:
    """The test videos draw a bar `i % width + 1` pixels wide in frame i."""
    gray = frame.to_ndarray(format="gray")
    return int((gray[gray.shape[0] // 2] > 100).sum())


def _decode(path):
    with av.open(str(path)) as c:
        return [_bar_width(f) for f in c.decode(c.streams.video[0])]


@pytest.fixture
def ingested(tmp_path):
    make_video(tmp_path / "crash.mp4", seconds=12, size=(320, 64), gop=45)
    make_video(tmp_path / "calm.mp4", seconds=12, size=(320, 64), gop=45)
    m = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {
                "video_id": "crash",
                "path": "crash.mp4",
                "label": "Collision",
                "event_start": 5.5,
                "event_time": 6.2,
                "event_end": 6.8,
            },
            {"video_id": "calm", "path": "calm.mp4", "label": "Normal Driving"},
        ],
    )
    build = tmp_path / "build"
    run_ingest(m, build, TAX, progress=False)
    return build


def test_reencode_is_frame_exact_and_labels_by_rule(ingested):
    cfg = ChunkConfig(window=4, stride=3.5, margin=1.0, mode="reencode")
    res = run_chunk(ingested, cfg, TAX, workers=2, progress=False)
    by_id = {c.clip_id: c for c in res.clips}
    # crash: windows [0,4] [3.5,7.5] [7,11]; event 5.5-6.8, moment 6.2, margin 1
    assert by_id["crash_0000000"].label == "Normal Driving"
    assert by_id["crash_0003500"].label == "Collision"
    assert by_id["crash_0003500"].event_offset == pytest.approx(2.7)
    assert "crash_0007000" not in by_id  # starts 0.2 s after the event: ambiguous
    assert res.dropped == {"ambiguous": 1}
    assert {by_id[f"calm_{s}"].label for s in ("0000000", "0003500", "0007000")} == {
        "Normal Driving"
    }
    clip = by_id["crash_0003500"]
    assert (clip.start, clip.end, clip.frames, clip.fps) == (3.5, 7.5, 120, 30.0)
    widths = _decode(ingested / clip.path)
    assert len(widths) == 120
    # frame k of the clip is source frame 105 + k (bar width = index % 320 + 1)
    assert widths[0] == 106 and widths[-1] == 225
    table = pq.read_table(ingested / "chunk/clips.parquet")
    assert table.num_rows == len(res.clips) == 5
    assert res.planned == len(res.clips) + sum(res.dropped.values())


def test_copy_starts_at_the_keyframe_before_the_planned_start(ingested):
    cfg = ChunkConfig(window=4, stride=3.5, margin=1.0, mode="copy")
    res = run_chunk(ingested, cfg, TAX, workers=1, progress=False)
    clip = next(c for c in res.clips if c.clip_id == "calm_0003500")
    # keyframes every 45 frames = 1.5 s: the one at or before 3.5 s is at 3.0 s
    assert (clip.planned_start, clip.start, clip.end) == (3.5, 3.0, 7.5)
    assert clip.frames == 135
    widths = _decode(ingested / clip.path)
    assert len(widths) == 135 and widths[0] == 91  # source frame 90
    first = next(c for c in res.clips if c.clip_id == "calm_0000000")
    assert (first.start, first.frames) == (0.0, 120)


def test_copy_with_b_frames_decodes_every_kept_frame(tmp_path):
    make_video(tmp_path / "b.mp4", seconds=10, size=(320, 64), gop=30, bframes=2)
    m = write_jsonl(
        tmp_path / "m.jsonl", [{"video_id": "b", "path": "b.mp4", "label": "Normal Driving"}]
    )
    run_ingest(m, tmp_path / "build", TAX, progress=False)
    res = run_chunk(
        tmp_path / "build", ChunkConfig(window=4, stride=2.2, mode="copy"), TAX, progress=False
    )
    for clip in res.clips:
        widths = _decode(tmp_path / "build" / clip.path)
        assert len(widths) == clip.frames
        first = round(clip.start * 30)
        assert widths == [(first + k) % 320 + 1 for k in range(clip.frames)]


def test_copy_label_uses_the_actual_earlier_start(tmp_path):
    # Planned [6, 10] would be Normal (ends >= 1 s after the event end at 4.9 s)... no:
    # planned start 5.9 lies 1 s after the event end, but the keyframe before it is
    # at 4.5 s, inside the event: the clip as cut shows the event, so it is dropped.
    make_video(tmp_path / "k.mp4", seconds=12, size=(96, 64), gop=45)
    m = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {
                "video_id": "k",
                "path": "k.mp4",
                "label": "Collision",
                "event_start": 2.0,
                "event_time": 2.5,
                "event_end": 4.9,
            }
        ],
    )
    run_ingest(m, tmp_path / "build", TAX, progress=False)
    cfg = ChunkConfig(
        window=4,
        stride=5.9,
        margin=1.0,
        mode="copy",
        ensure_event_clip=False,
        max_copy_stretch=2.0,  # the keyframe moves the start 1.4 s: still copied
    )
    res = run_chunk(tmp_path / "build", cfg, TAX, progress=False)
    assert [c.clip_id for c in res.clips] == ["k_0000000"]
    assert res.dropped == {"ambiguous": 1}
    cfg_re = cfg.model_copy(update={"mode": "reencode"})
    res_re = run_chunk(tmp_path / "build", cfg_re, TAX, force=True, progress=False)
    assert {c.clip_id: c.label for c in res_re.clips}["k_0005900"] == "Normal Driving"


def test_rerun_does_no_work_and_changed_settings_need_force(ingested):
    cfg = ChunkConfig(window=4, stride=3.5, mode="reencode")
    first = run_chunk(ingested, cfg, TAX, progress=False)
    mtimes = {c.path: os.stat(ingested / c.path).st_mtime_ns for c in first.clips}
    again = run_chunk(ingested, cfg, TAX, progress=False)
    assert again.cut_now == 0 and again.clips == first.clips
    assert mtimes == {c.path: os.stat(ingested / c.path).st_mtime_ns for c in again.clips}
    with pytest.raises(ChunkSettingsChanged, match="--force"):
        run_chunk(ingested, cfg.model_copy(update={"window": 5.0}), TAX, progress=False)
    redo = run_chunk(
        ingested, cfg.model_copy(update={"window": 5.0}), TAX, force=True, progress=False
    )
    assert redo.cut_now == 2 and all(c.end - c.start == 5.0 for c in redo.clips)


def test_a_folder_cut_before_encoder_threads_existed_is_recut_without_force(ingested):
    """Clips cut by an earlier version (3 x264 threads, no `encoder_threads` in their
    settings) are re-cut at the new default: an upgrade is no settings edit."""
    cfg = ChunkConfig(window=4, stride=3.5, mode="reencode")
    first = run_chunk(ingested, cfg, TAX, progress=False)
    settings = ingested / "chunk" / "settings.json"
    old = json.loads(settings.read_text())
    del old["chunk"]["encoder_threads"]
    settings.write_text(json.dumps(old))
    for part in (ingested / "chunk" / "parts").glob("*.json"):  # keyed on the old settings
        part.write_text(json.dumps({**json.loads(part.read_text()), "key": "earlier"}))
    again = run_chunk(ingested, cfg, TAX, progress=False)
    assert again.cut_now == 2 and again.clips == first.clips
    assert "encoder_threads" in json.loads(settings.read_text())["chunk"]
    with pytest.raises(ChunkSettingsChanged, match=r"chunk.encoder_threads: 1 -> 2"):
        run_chunk(ingested, cfg.model_copy(update={"encoder_threads": 2}), TAX, progress=False)


def test_unreadable_video_mid_stream_is_rejected_and_the_rest_goes_on(tmp_path):
    make_video(tmp_path / "ok.mp4", seconds=8)
    bad = make_video(tmp_path / "bad.mp4", seconds=8)
    m = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"video_id": "ok", "path": "ok.mp4", "label": "Normal Driving"},
            {"video_id": "bad", "path": "bad.mp4", "label": "Normal Driving"},
        ],
    )
    run_ingest(m, tmp_path / "build", TAX, progress=False)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 3])  # cut short between ingest and chunk
    res = run_chunk(tmp_path / "build", ChunkConfig(window=4, stride=4), TAX, progress=False)
    assert [r.video_id for r in res.rejects] == ["bad"]
    assert {c.video_id for c in res.clips} == {"ok"}


def test_a_source_gone_between_ingest_and_chunk_stops_it_before_any_change(tmp_path):
    make_video(tmp_path / "ok.mp4", seconds=8)
    gone = make_video(tmp_path / "gone.mp4", seconds=8)
    rows = [
        {"video_id": "ok", "path": "ok.mp4", "label": "Normal Driving"},
        {"video_id": "gone", "path": "gone.mp4", "label": "Normal Driving"},
    ]
    run_ingest(write_jsonl(tmp_path / "m.jsonl", rows), tmp_path / "build", TAX, progress=False)
    gone.unlink()  # an unmounted disk, say
    with pytest.raises(MissingSources, match=r"1 of 2 video files are missing .*gone\.mp4"):
        run_chunk(tmp_path / "build", ChunkConfig(window=4, stride=4), TAX, progress=False)
    assert not (tmp_path / "build" / "clips").exists()  # nothing cut, nothing deleted


@pytest.mark.slow
def test_killed_chunk_job_resumes_where_it_stopped(tmp_path):
    rows = []
    for k in range(6):
        make_video(tmp_path / f"v{k}.mp4", seconds=16, size=(320, 192))
        rows.append({"video_id": f"v{k}", "path": f"v{k}.mp4", "label": "Normal Driving"})
    m = write_jsonl(tmp_path / "m.jsonl", rows)
    build = tmp_path / "build"
    run_ingest(m, build, TAX, progress=False)
    cmd = [
        sys.executable,
        "-m",
        "vlm_autodrive.cli",
        "chunk",
        "--build",
        str(build),
        "--window",
        "4",
        "--stride",
        "2",
        "--workers",
        "1",
        "--preset",
        "medium",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    parts = build / "chunk" / "parts"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(parts.glob("*.json"))) < 2:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(parts.glob("*.json")))
    assert 2 <= done_before < 6, "the job finished before it could be killed"
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert f"cut now {6 - done_before}, of them re-cut after a change 0; " in out
    assert f"already done {done_before}; removed 0)" in out
    assert not list((build / "clips").rglob("*.tmp"))
    table = pq.read_table(build / "chunk/clips.parquet").to_pylist()
    assert len(table) == 6 * 7
    for row in table:
        assert len(_decode(build / row["path"])) == row["frames"] == 120


def test_clip_pixels_match_source(ingested):
    res = run_chunk(
        ingested, ChunkConfig(window=4, stride=3.5, crf=0, preset="ultrafast"), TAX, progress=False
    )
    clip = next(c for c in res.clips if c.clip_id == "calm_0007000")
    with av.open(str(ingested / clip.path)) as c:
        f = next(c.decode(c.streams.video[0])).to_ndarray(format="gray")
    assert np.abs(f[32].astype(int) - np.where(np.arange(320) < 211, 200, 0)).mean() < 10
