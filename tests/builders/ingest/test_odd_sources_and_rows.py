"""Rows the QA found the ingest mishandled, each now a counted reject naming its line:

- a path that is a FIFO (the run hung for ever in open()) or a directory (the whole
  ingest stopped with `Is a directory`, nothing ingested): `not a regular file: ...`;
- numbers typed loosely (`"event_time": true` was 1.0 s, `"5"` was 5.0) and a JSONL key
  given twice (the last value was kept silently); CSV manifests, text by nature, still
  read their times;
- a video id holding a line feed prints escaped, on one line;
- an empty manifest is exit 2, "no rows", not a finished ingest of nothing.

Each ingest runs in a subprocess under a timeout: a hang fails the test instead of the
suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_video, write_jsonl

NORMAL = "Normal Driving"


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("v") / "good.mp4", seconds=2)


def ingest(manifest: Path, build: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vlm_autodrive.cli", "-q", "ingest", manifest, "--build", build],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def rejects(build: Path) -> list[dict]:
    text = (build / "ingest" / "rejects.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("kind", ["FIFO", "directory"])
def test_a_path_that_is_no_regular_file_is_a_counted_reject(tmp_path, video, kind):
    (tmp_path / "good.mp4").symlink_to(video)
    if kind == "FIFO":
        os.mkfifo(tmp_path / "odd.mp4")
    else:
        (tmp_path / "odd.mp4").mkdir()
    manifest = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"video_id": "x1", "path": "odd.mp4", "label": NORMAL},
            {"video_id": "good", "path": "good.mp4", "label": NORMAL},
        ],
    )
    done = ingest(manifest, tmp_path / "b")  # before: hung (FIFO) or exit 2 (directory)
    assert done.returncode == 3, done.stderr
    assert "manifest rows 2 = videos 1 + rejected 1" in done.stdout
    assert f"x1 ({manifest}:1): path: " in done.stdout
    assert f"not a regular file: a {kind}" in done.stdout
    assert "Traceback" not in done.stderr
    (reject,) = rejects(tmp_path / "b")
    assert reject["line"] == 1 and reject["video_id"] == "x1"


LOOSE = {
    "bool_time": ({"event_time": True}, "event_time: Input should be a valid number (got true)"),
    "string_time": ({"event_time": "5"}, 'event_time: Input should be a valid number (got "5")'),
    "bool_answer": (
        {"event_time": 1.0, "metadata": {"cause": {"options": ["a", "b"], "answer": True}}},
        "metadata.cause.answer: Input should be a valid integer (got true)",
    ),
}


@pytest.mark.parametrize("case", list(LOOSE))
def test_numbers_are_typed_strictly(tmp_path, video, case):
    extra, words = LOOSE[case]
    manifest = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"video_id": "ok", "path": str(video), "label": NORMAL},
            {"video_id": "x2", "path": str(video), "label": "Collision", **extra},
        ],
    )
    done = ingest(manifest, tmp_path / "b")
    assert done.returncode == 3, done.stderr
    assert f"x2 ({manifest}:2): {words}" in done.stdout


def test_a_jsonl_key_given_twice_is_a_counted_reject(tmp_path, video):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"video_id": "ok", "path": str(video), "label": NORMAL})
        + "\n"
        + f'{{"video_id": "x3", "path": "{video}", "label": "Collision", "label": "{NORMAL}"}}\n'
    )
    done = ingest(manifest, tmp_path / "b")
    assert done.returncode == 3, done.stderr
    assert f"x3 ({manifest}:2): unreadable row: key 'label' is given twice" in done.stdout


def test_csv_times_are_still_read_as_numbers(tmp_path):
    video = make_video(tmp_path / "e.mp4", seconds=3)
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "video_id,path,label,event_time,event_end\n"
        "e1,e.mp4,Collision,1.5,2\n"
        "e2,e.mp4,Collision,soon,\n"
    )
    done = ingest(manifest, tmp_path / "b")
    assert done.returncode == 3, done.stderr
    assert "e2 (" in done.stdout and "event_time: 'soon' is not a number of seconds" in done.stdout
    import pyarrow.parquet as pq

    (row,) = pq.read_table(tmp_path / "b" / "ingest" / "videos.parquet").to_pylist()
    assert (row["event_start"], row["event_time"], row["event_end"]) == (1.5, 1.5, 2.0)
    assert row["path"] == str(video)


def test_a_video_id_with_a_line_feed_prints_on_one_line(tmp_path, video):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f'video_id,path,label\n"x1\n\tx2",{video},{NORMAL}\n')
    done = ingest(manifest, tmp_path / "b")
    assert done.returncode == 3, done.stderr
    (line,) = [x for x in done.stdout.splitlines() if f"({manifest}:" in x]
    assert line.strip().startswith("x1\\n\\tx2 (")


def test_an_empty_manifest_is_bad_input(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n")
    done = ingest(manifest, tmp_path / "b")
    assert done.returncode == 2, done.stdout
    assert f"autodrive: {manifest}: no rows" in done.stderr
    assert not (tmp_path / "b" / "ingest").exists()
