"""A DoTA-layout dataset end to end: numbered frames -> mp4 -> adapter -> ingest -> clips.

Every annotation row is counted (entries + dropped + rejected = rows), and every entry
with an event ends with exactly one event clip or a named reject: an event 0.2 s into a
6 s clip, a 5 s clip shorter than the 6 s window (CCD's length), an event 0.5 s before
the end of an 8 s clip, a clip whose frames have a gap (rejected at frames-to-video, so
absent from the videos: a reject at ingest), and a crash between other road users
(dropped by the bundled mapping).
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest

from vlm_autodrive.cli import main

Image = pytest.importorskip("PIL.Image")

# id: (frames at 10 fps, anomaly_start, anomaly_end, class, frame numbers to leave out)
CLIPS = {
    "early": (60, 2, 20, "ego: turning", ()),
    "short": (50, 30, 40, "ego: lateral", ()),
    "late": (80, 75, 80, "ego: oncoming", ()),
    "gappy": (60, 30, 40, "ego: turning", (17,)),
    "others": (60, 30, 40, "other: turning", ()),
}


def _write_frames(root, vid, n, missing):
    folder = root / vid
    folder.mkdir(parents=True)
    for i in range(n):
        if i in missing:
            continue
        img = np.full((64, 96, 3), 30 + (i * 7) % 200, np.uint8)
        img[:, : 1 + i % 96] = 255  # a bar that moves, so frames differ
        Image.fromarray(img).save(folder / f"{i:06d}.jpg")


def test_dota_layout_from_frames_to_one_event_clip_per_entry(tmp_path, capsys):
    frames, videos = tmp_path / "frames", tmp_path / "videos"
    meta = {}
    for vid, (n, start, end, cls, missing) in CLIPS.items():
        _write_frames(frames, vid, n, missing)
        meta[vid] = {
            "video_start": 0,
            "video_end": n - 1,
            "anomaly_start": start,
            "anomaly_end": end,
            "anomaly_class": cls,
            "num_frames": n,
            "subset": "val",
        }
    (tmp_path / "meta.json").write_text(json.dumps(meta))

    # gappy's frames are rejected (exit 3); the other four become videos
    assert main(["frames-to-video", str(frames), "--out", str(videos), "--fps", "10"]) == 3
    assert sorted(p.stem for p in videos.glob("*.mp4")) == ["early", "late", "others", "short"]
    manifest = tmp_path / "manifest.jsonl"
    code = main(["adapt", "dota", str(tmp_path / "meta.json"), "--out", str(manifest),
                 "--video-root", str(videos)])  # fmt: skip
    assert code in (0, 3)
    printed = capsys.readouterr().out
    assert "5 rows = 4 entries" in printed and "1 dropped" in printed and "0 rejected" in printed

    build = tmp_path / "build"
    assert main(["ingest", str(manifest), "--build", str(build)]) == 3  # gappy: no video
    ingest_rejects = (build / "ingest" / "rejects.jsonl").read_text().splitlines()
    assert [json.loads(r)["video_id"] for r in ingest_rejects] == ["gappy"]
    assert main(["chunk", "--build", str(build), "--mode", "reencode"]) == 0

    clips = pq.read_table(build / "chunk" / "clips.parquet").to_pylist()
    events = Counter(c["video_id"] for c in clips if c["label"] == "Collision")
    assert events == {"early": 1, "short": 1, "late": 1}  # exactly one each
    (short,) = [c for c in clips if c["video_id"] == "short"]
    assert (short["start"], short["end"]) == (0.0, 5.0)  # the whole 5 s clip
    summary = json.loads((build / "chunk" / "summary.json").read_text())
    assert summary["event_videos"]["total"] == 3 == summary["event_videos"]["event clip"]
