"""No silent loss: every event video gets its event clip, or a reject naming why.

Edge events, sources off the window grid, videos shorter than a window, keyframes far
from the window start in copy mode; counts conserved in every case.
"""

import json

import pytest

from tests.conftest import make_video, write_jsonl
from vlm_autodrive.builders.clips.stage import run_chunk
from vlm_autodrive.builders.core.sections import ChunkConfig
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.stage import run_ingest

TAX = load_taxonomy()


def _build(tmp_path, events: dict[str, float | None], seconds=12.0, fps=30, gop=30):
    """One tiny video per entry (None: Normal Driving), ingested into `tmp_path/build`."""
    rows = []
    for vid, moment in events.items():
        make_video(tmp_path / f"{vid}.mp4", seconds=seconds, fps=fps, gop=gop)
        row = {"video_id": vid, "path": f"{vid}.mp4", "label": "Normal Driving"}
        if moment is not None:
            row.update(label="Collision", event_time=moment)
        rows.append(row)
    build = tmp_path / "build"
    ing = run_ingest(write_jsonl(tmp_path / "m.jsonl", rows), build, TAX, progress=False)
    assert not ing.rejects, ing.rejects
    return build


def _event_clips(res, vid):
    return [c for c in res.clips if c.video_id == vid and c.label == "Collision"]


def _conserved(res, build):
    s = json.loads((build / "chunk/summary.json").read_text())
    assert s["windows_planned"] == (
        s["clips"] + sum(s["dropped"].values()) + s["windows_of_rejected_videos"]
    )
    ev = s["event_videos"]
    assert ev["total"] == sum(v for k, v in ev.items() if k != "total")
    return s


@pytest.mark.parametrize("mode", ["reencode", "copy"])
def test_events_at_the_edges_get_their_event_clip(tmp_path, mode):
    build = _build(tmp_path, {"early": 0.4, "late": 11.8, "calm": None})  # 12 s each
    cfg = ChunkConfig(window=4, stride=3.5, margin=1.0, mode=mode)
    res = run_chunk(build, cfg, TAX, progress=False)
    assert not res.rejects
    (early,) = _event_clips(res, "early")
    assert (early.start, early.end, early.event_offset) == (0.0, 4.0, 0.4)
    (late,) = _event_clips(res, "late")
    assert (late.start, late.end) == (8.0, 12.0)
    assert late.event_offset == pytest.approx(3.8)
    s = _conserved(res, build)
    assert s["event_videos"] == {"total": 2, "event clip": 2}


def test_off_grid_source_gives_every_collision_video_its_clip(tmp_path):
    # 15 fps: a stride of 2.5 s starts windows between frames (37.5 frames), so a
    # planned window that holds the moment may not hold it as cut.
    moments = {f"c{k}": m for k, m in enumerate([1.0, 3.0, 3.03, 5.5, 6.02, 8.05])}
    build = _build(tmp_path, moments, seconds=10, fps=15, gop=15)
    for mode in ("reencode", "copy"):
        cfg = ChunkConfig(window=3, stride=2.5, margin=0.5, mode=mode)
        res = run_chunk(build, cfg, TAX, force=True, progress=False)
        assert not res.rejects, res.rejects
        for vid, moment in moments.items():
            clips = _event_clips(res, vid)
            assert clips, (mode, vid)
            for c in clips:  # held with the margin, as cut
                assert c.start + 0.5 - 1e-3 <= moment <= c.end - 0.5 + 1e-3
        assert _conserved(res, build)["event_videos"] == {"total": 6, "event clip": 6}


@pytest.mark.parametrize("mode", ["reencode", "copy"])
def test_video_shorter_than_the_window_is_one_whole_clip(tmp_path, mode):
    build = _build(tmp_path, {"ccd": 4.6, "calm": None}, seconds=5)  # CCD clips are 5 s
    res = run_chunk(build, ChunkConfig(window=6, stride=5.5, mode=mode), TAX, progress=False)
    assert not res.rejects
    by_vid = {c.video_id: c for c in res.clips}
    assert len(res.clips) == 2
    assert (by_vid["ccd"].label, by_vid["ccd"].start, by_vid["ccd"].end) == ("Collision", 0, 5)
    assert by_vid["ccd"].frames == 150
    assert by_vid["calm"].label == "Normal Driving"
    assert _conserved(res, build)["videos_whole"] == 2
    cfg = ChunkConfig(window=6, stride=5.5, mode=mode, short_videos="reject")
    res = run_chunk(build, cfg, TAX, force=True, progress=False)
    assert not res.clips and len(res.rejects) == 2
    assert all("shorter (5 s) than one window (6 s)" in r.reason for r in res.rejects)
    assert _conserved(res, build)["event_videos"] == {"total": 1, "rejected": 1}


def test_copy_mode_caps_how_far_a_keyframe_stretches_a_window(tmp_path):
    # keyframes every 10 s: copied windows starting at 5.5 or 16.5 s would start 5.5
    # and 6.5 s earlier; the one at 11 s only 1 s (at the cap)
    build = _build(tmp_path, {"crash": 8.0, "calm": None}, seconds=24, gop=300)
    cfg = ChunkConfig(window=6, stride=5.5, margin=1.0, mode="copy", max_copy_stretch=1.0)
    res = run_chunk(build, cfg, TAX, progress=False)
    calm = {c.planned_start: c for c in res.clips if c.video_id == "calm"}
    assert {s: c.cut_mode for s, c in calm.items()} == {
        0.0: "copy",
        5.5: "reencode",
        11.0: "copy",
        16.5: "reencode",
    }
    assert (calm[5.5].start, calm[11.0].start) == (5.5, 10.0)
    assert all(c.start >= c.planned_start - 1.0 for c in res.clips)
    (crash,) = _event_clips(res, "crash")
    assert (crash.start, crash.cut_mode) == (5.5, "reencode")
    s = _conserved(res, build)
    assert s["copy_stretch"] == {"reencoded": 4, "not_cut": 0}

    res = run_chunk(build, cfg.model_copy(update={"stretched": "reject"}), TAX, force=True)
    assert sorted(c.planned_start for c in res.clips) == [0.0, 11.0]
    assert res.dropped == {"copy_stretch": 2}
    (rej,) = res.rejects
    assert rej.video_id == "crash" and "past max_copy_stretch 1 s" in rej.reason
    s = _conserved(res, build)
    assert s["event_videos"] == {"total": 1, "rejected": 1}
    assert s["copy_stretch"] == {"reencoded": 0, "not_cut": 2}


@pytest.mark.parametrize("mode", ["reencode", "copy"])
def test_disk_full_while_cutting_fails_the_run_and_rejects_nothing(tmp_path, monkeypatch, mode):
    import av

    build = _build(tmp_path, {"calm": None}, seconds=5)
    real_open = av.open

    def disk_full_on_write(path, mode_="r", *args, **kwargs):
        if mode_ == "w":
            raise av.error.OSError(28, "No space left on device")
        return real_open(path, mode_, *args, **kwargs)

    monkeypatch.setattr(av, "open", disk_full_on_write)  # the cutters call av.open
    with pytest.raises(OSError, match="No space left"):
        run_chunk(build, ChunkConfig(window=4, stride=4, mode=mode), TAX, progress=False)
    assert not list((build / "chunk/parts").glob("*.json"))


def test_overlapping_windows_give_exactly_one_event_clip(tmp_path):
    """Stride 1 s, window 4 s, margin 1 s: windows 3-7, 4-8 and 5-9 hold an event at 6 s
    with the margin. `one` keeps the window with the event nearest its centre and drops
    the others, counted; `all` keeps all three."""
    build = _build(tmp_path, {"crash": 6.0})
    one = run_chunk(build, ChunkConfig(window=4, stride=1, margin=1.0), TAX, progress=False)
    (clip,) = _event_clips(one, "crash")
    assert (clip.start, clip.end) == (4.0, 8.0)
    s = _conserved(one, build)
    assert s["dropped"]["event_duplicate"] == 2
    cfg = ChunkConfig(window=4, stride=1, margin=1.0, event_clips="all")
    every = run_chunk(build, cfg, TAX, force=True, progress=False)
    assert len(_event_clips(every, "crash")) == 3
    _conserved(every, build)
