"""One odd manifest row is that row's reject, never the end of the ingest: an empty path,
a NUL byte, a 256-byte file name, a relative symlink loop, a cause question with more
options than letters or with repeated options. Each is counted and names its line; the
good rows around it are ingested, and the reject list prints what the row holds with
its control characters escaped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import make_video, write_jsonl
from vlm_autodrive.cli import main

CAUSE = {"question": "Why?", "options": ["a", "b", "c"], "answer": 1}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    """Two different videos (byte-identical ones under two ids are rejected as such)."""
    folder = tmp_path_factory.mktemp("v")
    return [make_video(folder / f"{i}.mp4", seconds=2 + i) for i in (1, 2)]


def row(video_id: str, path: str, **meta) -> dict:
    return {
        "video_id": video_id,
        "path": path,
        "label": "Collision",
        "event_time": 1.0,
        "metadata": meta,
    }


HOSTILE = {
    "empty_path": (row("bad", ""), "path: Value error, empty"),
    "nul_byte": (row("bad", "a\x00b.mp4"), "holds a NUL byte"),
    "long_name": (row("bad", "x" * 252 + ".mp4"), "is 256 bytes long, more than the 255"),
    "symlink_loop": (row("bad", "loop/clip.mp4"), "path: loop/clip.mp4: a symbolic link loop"),
    "30_options": (
        row("bad", "good.mp4", cause={"options": [f"o{i}" for i in range(30)], "answer": 0}),
        "30 options: a question has at most 26, one per letter A to Z",
    ),
    "repeated_options": (
        row("bad", "good.mp4", cause={"options": ["swerve", "brake", "Swerve "], "answer": 1}),
        "options 0 and 2 are the same ('Swerve ')",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_one_odd_row_is_a_counted_reject_naming_its_line(tmp_path, videos, capsys, case):
    bad, words = HOSTILE[case]
    (tmp_path / "good.mp4").symlink_to(videos[0])
    (tmp_path / "other.mp4").symlink_to(videos[1])
    (tmp_path / "loop").symlink_to("loop2")  # loop -> loop2 -> loop
    (tmp_path / "loop2").symlink_to("loop")
    manifest = write_jsonl(
        tmp_path / "m.jsonl",
        [row("first", "good.mp4", cause=CAUSE), bad, row("last", "other.mp4")],
    )
    build = tmp_path / "b"
    code = main(["ingest", str(manifest), "--build", str(build)])
    out, err = capsys.readouterr()
    assert code == 3, err  # finished, some inputs rejected
    assert "Traceback" not in err
    assert "manifest rows 3 = videos 2 + rejected 1" in out
    assert f"bad ({manifest}:2): " in out and words in out
    assert "\x00" not in out  # printed escaped: `\x00`
    (reject,) = [json.loads(x) for x in (build / "ingest/rejects.jsonl").read_text().splitlines()]
    assert reject["line"] == 2 and reject["video_id"] == "bad" and words in reject["reason"]
