"""Manifest reading (JSONL, CSV, Parquet) and ingest, including every kind of bad input."""

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import make_audio_only, make_video, write_jsonl
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.manifest import read_manifest
from vlm_autodrive.builders.ingest.probe import ProbeError, probe_video
from vlm_autodrive.builders.ingest.sources import MissingSources
from vlm_autodrive.builders.ingest.stage import run_ingest
from vlm_autodrive.cli import main

TAX = load_taxonomy()
META = {"weather": "rain", "actors": [{"role": "ego", "type": "car", "motion": "braking"}]}


def test_jsonl_csv_and_parquet_read_the_same(tmp_path):
    rows = [
        {
            "video_id": "a",
            "path": "a.mp4",
            "label": "Collision",
            "event_time": 5.0,
            "metadata": META,
        },
        {"video_id": "b", "path": "b.mp4", "label": "Normal Driving"},
    ]
    jl = write_jsonl(tmp_path / "m.jsonl", rows)
    csv = tmp_path / "m.csv"
    csv.write_text(
        "video_id,path,label,event_time,weather,actors\n"
        f'a,a.mp4,Collision,5.0,rain,"{json.dumps(META["actors"]).replace(chr(34), chr(34) * 2)}"\n'
        "b,b.mp4,Normal Driving,,,\n"
    )
    pqt = tmp_path / "m.parquet"
    pq.write_table(
        pa.Table.from_pylist([{**r, "metadata": json.dumps(r.get("metadata", {}))} for r in rows]),
        pqt,
    )
    got = [read_manifest(p, TAX.names) for p in (jl, csv, pqt)]
    for entries, rejects in got:
        assert rejects == []
        assert [e.entry.model_dump() for e in entries] == [e.entry.model_dump() for e in got[0][0]]
    a = got[0][0][0].entry
    assert a.event_start == a.event_end == 5.0
    assert a.path == str((tmp_path / "a.mp4").resolve())
    assert a.metadata.actors[0].motion == "braking"


def test_bad_manifest_rows_name_their_line(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text(
        '{"video_id": "a", "path": "a.mp4", "label": "Collision", "event_time": 3}\n'
        "{not json\n"
        '{"video_id": "b", "path": "b.mp4", "label": "Sudden Stop"}\n'
        '{"video_id": "a", "path": "c.mp4", "label": "Normal Driving"}\n'
        '{"video_id": "d", "path": "d.mp4", "label": "Collision", "event_time": "soon"}\n'
        '{"video_id": "e", "path": "e.mp4", "label": "Collision", "event_time": 5,'
        ' "event_end": 4}\n'
        '{"video_id": "f", "path": "f.mp4", "label": "Normal Driving", "colour": "red"}\n'
    )
    rows, rejects = read_manifest(m, TAX.names)
    assert [r.entry.video_id for r in rows] == ["a"]
    by_line = {r.line: r.reason for r in rejects}
    assert set(by_line) == {2, 3, 4, 5, 6, 7}
    assert "not valid JSON" in by_line[2]
    assert "unknown label 'Sudden Stop'" in by_line[3]
    assert "duplicate video_id (first seen on line 1)" in by_line[4]
    assert by_line[5].startswith("event_time:")
    assert "event_start <= event_time <= event_end" in by_line[6]
    assert "colour" in by_line[7]


def test_event_time_must_match_the_label_kind(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text(
        '{"video_id": "a", "path": "a.mp4", "label": "Collision", "event_time": 3}\n'
        '{"video_id": "b", "path": "b.mp4", "label": "Near-Collision"}\n'
        '{"video_id": "c", "path": "c.mp4", "label": "Normal Driving", "event_time": 2}\n'
        '{"video_id": "d", "path": "d.mp4", "label": "Normal Driving"}\n'
    )
    rows, rejects = read_manifest(m, TAX.names, TAX.normal)
    assert [r.entry.video_id for r in rows] == ["a", "d"]
    by_line = {r.line: r.reason for r in rejects}
    assert "'Near-Collision' is an event class but the row has no event_time" in by_line[2]
    assert "'Normal Driving' is the background class but the row has an event_time" in by_line[3]
    # without the background class named, only the schema is checked
    assert len(read_manifest(m, TAX.names)[0]) == 4


def test_cause_question_reads_from_a_csv_column(tmp_path):
    m = tmp_path / "m.csv"
    cause = '{""question"": ""Why?"", ""options"": [""a"", ""b""], ""answer"": 1}'
    m.write_text(f'video_id,path,label,event_time,cause\na,a.mp4,Collision,3,"{cause}"\n')
    rows, rejects = read_manifest(m, TAX.names, TAX.normal)
    assert not rejects
    assert rows[0].entry.metadata.cause.options[rows[0].entry.metadata.cause.answer] == "b"


def test_csv_row_with_extra_fields_is_rejected(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("video_id,path,label\na,a.mp4,Normal Driving\nb,b.mp4,Normal Driving,oops\n")
    rows, rejects = read_manifest(m, TAX.names)
    assert len(rows) == 1 and rejects[0].line == 3


def _bad_inputs(d):
    """One usable video and one file for each kind of bad input, with a manifest."""
    make_video(d / "good.mp4", seconds=8)
    make_video(d / "late.mp4", seconds=8, gop=15)
    make_video(d / "vfr.mp4", seconds=4, vfr=True)
    make_audio_only(d / "audio.m4a")
    (d / "empty.mp4").write_bytes(b"")
    (d / "junk.mp4").write_bytes(b"this is not a video at all" * 50)
    full = (d / "good.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(full[: len(full) // 2])
    rows = [
        {"video_id": "good", "path": "good.mp4", "label": "Collision", "event_time": 4.0},
        {"video_id": "missing", "path": "nope.mp4", "label": "Normal Driving"},
        {"video_id": "empty", "path": "empty.mp4", "label": "Normal Driving"},
        {"video_id": "junk", "path": "junk.mp4", "label": "Normal Driving"},
        {"video_id": "truncated", "path": "truncated.mp4", "label": "Normal Driving"},
        {"video_id": "audio", "path": "audio.m4a", "label": "Normal Driving"},
        {"video_id": "vfr", "path": "vfr.mp4", "label": "Normal Driving"},
        # its own file: good.mp4's bytes under another id would be a duplicate reject
        {"video_id": "late", "path": "late.mp4", "label": "Collision", "event_time": 9.5},
        {"video_id": "odd", "path": "good.mp4", "label": "Unknown Class"},
        {"video_id": "good", "path": "good.mp4", "label": "Normal Driving"},
    ]
    return write_jsonl(d / "manifest.jsonl", rows)


def test_each_bad_input_is_rejected_with_its_reason(tmp_path):
    manifest = _bad_inputs(tmp_path)
    res = run_ingest(manifest, tmp_path / "build", TAX, progress=False)
    assert res.rows == 10 == len(res.videos) + len(res.rejects)
    # a variable-rate video is ingested with its timing facts; chunk judges them
    assert [v.video_id for v in res.videos] == ["good", "vfr"]
    vfr = res.videos[1]
    assert (vfr.fps, vfr.max_gap) == (15.0, pytest.approx(0.0667, abs=1e-3)) and vfr.missing > 0.1
    reasons = {r.video_id + f"@{r.line}": r.reason for r in res.rejects}
    assert "file not found" in reasons["missing@2"]
    assert "empty file (0 bytes)" in reasons["empty@3"]
    assert "cannot open as a video" in reasons["junk@4"]
    assert "truncated" in reasons["truncated@5"] or "cannot open" in reasons["truncated@5"]
    assert "no video stream (has: audio)" in reasons["audio@6"]
    assert "outside the video (8 s long)" in reasons["late@8"]
    assert "unknown label" in reasons["odd@9"]
    assert "duplicate video_id" in reasons["good@10"]
    lines = (tmp_path / "build/ingest/rejects.jsonl").read_text().splitlines()
    assert len(lines) == 8 and all(json.loads(x)["source"] == str(manifest) for x in lines)


def test_truncated_faststart_mp4_is_caught(tmp_path):
    src = make_video(tmp_path / "src.mp4", seconds=6)
    import av

    fast = tmp_path / "fast.mp4"
    with av.open(str(src)) as i, av.open(str(fast), "w", options={"movflags": "faststart"}) as o:
        s = o.add_stream_from_template(i.streams.video[0])
        for p in i.demux(i.streams.video[0]):
            if p.size:
                p.stream = s
                o.mux(p)
    data = fast.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(ProbeError, match="truncated"):
        probe_video(cut)


def test_cli_exit_code_says_inputs_were_rejected(tmp_path, capsys):
    manifest = _bad_inputs(tmp_path)
    assert main(["ingest", str(manifest), "--build", str(tmp_path / "b"), "--workers", "2"]) == 3
    out = capsys.readouterr().out
    assert "manifest rows 10 = videos 2 + rejected 8" in out
    assert f"{manifest}:6" in out  # names the manifest line


def test_rerun_with_same_inputs_does_no_work(tmp_path):
    make_video(tmp_path / "a.mp4", seconds=7)
    m = write_jsonl(
        tmp_path / "m.jsonl", [{"video_id": "a", "path": "a.mp4", "label": "Normal Driving"}]
    )
    first = run_ingest(m, tmp_path / "b", TAX, progress=False)
    assert not first.skipped and first.videos[0].frames == 210
    table = tmp_path / "b" / "ingest" / "videos.parquet"
    written = table.stat().st_mtime_ns
    again = run_ingest(m, tmp_path / "b", TAX, progress=False)
    assert again.skipped and [v.video_id for v in again.videos] == ["a"]
    assert table.stat().st_mtime_ns == written  # nothing probed or written again
    # A file that went missing stops the run, changing nothing (an unmounted disk must
    # not delete the build); pruned on purpose, it is a reject.
    (tmp_path / "a.mp4").unlink()
    with pytest.raises(MissingSources, match="1 of 1 video files are missing"):
        run_ingest(m, tmp_path / "b", TAX, progress=False)
    assert table.stat().st_mtime_ns == written
    gone = run_ingest(m, tmp_path / "b", TAX, progress=False, prune_missing=True)
    assert not gone.skipped and not gone.videos and "not found" in gone.rejects[0].reason
    shutil.rmtree(tmp_path / "b")


def test_missing_manifest_is_a_clear_error(tmp_path, capsys):
    assert main(["ingest", str(tmp_path / "none.jsonl"), "--build", str(tmp_path)]) == 2
    assert "manifest not found" in capsys.readouterr().err


def _corrupt_mid_stream(src, dst, at=0.5):
    """A copy of `src` with 400 bytes of noise written over the middle of its data."""
    data = bytearray(src.read_bytes())
    a = int(len(data) * at)
    data[a : a + 400] = bytes((i * 37 + 11) % 256 for i in range(400))
    dst.write_bytes(bytes(data))
    return dst


def _still_png(path):
    """A PNG image (one frame), whatever `path` is named."""
    import av
    import numpy as np

    with av.open(str(path), "w", format="image2") as c:
        s = c.add_stream("png", rate=1)
        s.width, s.height, s.pix_fmt = 64, 48, "rgb24"
        c.mux(s.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), "rgb24")))
        c.mux(s.encode(None))
    return path


def test_not_a_video_and_corrupt_mid_stream_are_rejected_naming_why(tmp_path):
    good = make_video(tmp_path / "good.mp4", seconds=8)
    _corrupt_mid_stream(good, tmp_path / "mid.mp4")
    _still_png(tmp_path / "still.mp4")
    make_video(tmp_path / "one.mp4", seconds=1 / 30)
    rows = [
        {"video_id": v, "path": f"{v}.mp4", "label": "Normal Driving"}
        for v in ("good", "mid", "still", "one")
    ]
    res = run_ingest(write_jsonl(tmp_path / "m.jsonl", rows), tmp_path / "b", TAX, progress=False)
    assert res.rows == 4 == len(res.videos) + len(res.rejects)
    assert [v.video_id for v in res.videos] == ["good"]
    reasons = {r.video_id: r.reason for r in res.rejects}
    frame = int(reasons["mid"].split("frame ")[1].split()[0])
    assert 60 < frame < 200 and "does not decode (corrupt mid-stream)" in reasons["mid"]
    assert "an image (png_pipe), not a video" in reasons["still"]
    assert "holds 1 frame(s): a still image" in reasons["one"]


def test_tiny_picture_is_not_a_video(tmp_path):
    with pytest.raises(ProbeError, match="a 2x2 picture is not a video"):
        probe_video(make_video(tmp_path / "tiny.mp4", seconds=1, size=(2, 2)))


@pytest.mark.parametrize("mode", ["reencode", "copy"])
def test_nothing_corrupt_ships_in_either_cut_mode(tmp_path, mode):
    from vlm_autodrive.builders.clips.stage import run_chunk
    from vlm_autodrive.builders.core.sections import ChunkConfig

    good = make_video(tmp_path / "good.mp4", seconds=8)
    _corrupt_mid_stream(good, tmp_path / "late.mp4", at=0.8)
    rows = [
        {"video_id": v, "path": f"{v}.mp4", "label": "Normal Driving"} for v in ("good", "late")
    ]
    build = tmp_path / "b"
    run_ingest(write_jsonl(tmp_path / "m.jsonl", rows), build, TAX, progress=False)
    res = run_chunk(build, ChunkConfig(window=4, stride=4, mode=mode), TAX, progress=False)
    assert {c.video_id for c in res.clips} == {"good"}
    assert sorted(p.parent.name for p in (build / "clips").rglob("*.mp4")) == ["good", "good"]


def test_a_machine_error_fails_the_run_and_is_not_a_reject(tmp_path, monkeypatch, capsys):
    import av

    make_video(tmp_path / "a.mp4", seconds=2)
    m = write_jsonl(
        tmp_path / "m.jsonl", [{"video_id": "a", "path": "a.mp4", "label": "Normal Driving"}]
    )

    def disk_full(*args, **kwargs):
        raise av.error.OSError(28, "No space left on device")

    monkeypatch.setattr(av, "open", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run_ingest(m, tmp_path / "b", TAX, progress=False)
    assert not (tmp_path / "b/ingest/rejects.jsonl").exists()
    assert main(["ingest", str(m), "--build", str(tmp_path / "b")]) == 1
    assert "error: [Errno 28] No space left on device" in capsys.readouterr().err
