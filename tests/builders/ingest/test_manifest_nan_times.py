"""A NaN event time (Python's `json.dumps` writes one for a pandas gap, a CSV may hold
`nan`) is a reject that says so, not an "event_start <= event_time" puzzle."""

from __future__ import annotations

from tests.conftest import write_jsonl
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.manifest import read_manifest

TAX = load_taxonomy()


def test_nan_event_times_are_rejected_naming_the_nan(tmp_path):
    nan = float("nan")
    jsonl = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"video_id": "a", "path": "a.mp4", "label": "Collision", "event_time": nan},
            {"video_id": "b", "path": "b.mp4", "label": "Normal Driving", "event_time": nan},
            {
                "video_id": "c",
                "path": "c.mp4",
                "label": "Collision",
                "event_time": 2,
                "event_end": float("inf"),
            },
            {"video_id": "d", "path": "d.mp4", "label": "Collision", "event_time": 2},
        ],
    )
    assert "NaN" in jsonl.read_text()  # what json.dumps writes
    csv = tmp_path / "m.csv"
    csv.write_text(
        "video_id,path,label,event_time\na,a.mp4,Collision,nan\nb,b.mp4,Normal Driving,NaN\n"
    )
    expected = {
        jsonl: {1: "event_time", 2: "event_time", 3: "event_end"},
        csv: {2: "event_time", 3: "event_time"},
    }
    for manifest, lines in expected.items():
        rows, rejects = read_manifest(manifest, TAX.names, TAX.normal)
        reasons = {r.line: r.reason for r in rejects}
        assert set(reasons) == set(lines), reasons
        for line, field in lines.items():
            assert reasons[line].startswith(f"{field}:"), reasons[line]
            assert "is not a time in seconds" in reasons[line], reasons[line]
            assert "event_start <= event_time" not in reasons[line]
        assert [r.entry.video_id for r in rows] == (["d"] if manifest == jsonl else [])
