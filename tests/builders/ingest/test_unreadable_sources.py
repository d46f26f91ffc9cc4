"""A source that was ingested and can no longer be read is unavailable, not removed.

A video file emptied (`: > v.mp4`, a copy restarted) or overwritten with bytes that are no
video stops `build`/`ingest` with exit 2 before anything changes, naming the file, as a
missing file does; no clip is deleted. `--prune-missing` drops it on purpose. A row never
ingested before whose file does not probe stays an ordinary counted reject."""

from __future__ import annotations

import json
import os

import pytest

from tests.builders.real_builds import autodrive, clip_states, tiny_recipe
from tests.conftest import write_jsonl

DAMAGE = {
    "emptied": lambda path: path.write_bytes(b""),
    "random_bytes": lambda path: path.write_bytes(os.urandom(4096)),
}


@pytest.fixture
def built(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path)
    code, text = autodrive(capsys, "build", recipe)
    assert code == 0, text
    return recipe, tmp_path / "build"


def _first_row(tmp_path) -> dict:
    manifest = tmp_path / "sample" / "manifest.jsonl"
    return json.loads(manifest.read_text().splitlines()[0])


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_source_stops_the_build_and_deletes_nothing(tmp_path, capsys, built, damage):
    recipe, build = built
    before = clip_states(build)
    ingest_files = {p.name: p.read_bytes() for p in (build / "ingest").iterdir() if p.is_file()}
    row = _first_row(tmp_path)
    source = tmp_path / "sample" / row["path"]
    DAMAGE[damage](source)

    code, text = autodrive(capsys, "build", recipe)
    assert code == 2, text
    assert "1 of 6 video files are missing or can no longer be read" in text, text
    assert str(source) in text and "--prune-missing" in text
    assert "Traceback" not in text
    assert clip_states(build) == before  # no clip deleted
    now = {p.name: p.read_bytes() for p in (build / "ingest").iterdir() if p.is_file()}
    assert now == ingest_files  # ingest recorded nothing

    manifest = tmp_path / "sample" / "manifest.jsonl"
    code, text = autodrive(capsys, "ingest", manifest, "--build", build)
    assert code == 2 and "can no longer be read" in text, text

    code, text = autodrive(capsys, "build", recipe, "--prune-missing")
    assert code == 3, text  # done, with the damaged video a counted reject
    rejects = (build / "ingest" / "rejects.jsonl").read_text()
    assert row["video_id"] in rejects
    assert not (build / "clips" / row["video_id"]).exists()
    assert "removed 1" in text


def test_chunk_refuses_to_recut_from_an_emptied_source(tmp_path, capsys, built):
    recipe, build = built
    before = clip_states(build)
    row = _first_row(tmp_path)
    victim = next(k for k in sorted(before) if k.startswith(f"clips/{row['video_id']}/"))
    (build / victim).unlink()  # this video must be cut again ...
    (tmp_path / "sample" / row["path"]).write_bytes(b"")  # ... from a file now empty
    code, text = autodrive(capsys, "chunk", "--build", build, "--recipe", recipe)
    assert code == 2, text
    assert "1 of 6 video files are missing or can no longer be read" in text
    assert "empty (0 bytes)" in text
    assert clip_states(build) == {k: v for k, v in before.items() if k != victim}


def test_a_new_row_whose_file_is_no_video_is_an_ordinary_reject(tmp_path, capsys, built):
    build = built[1]
    manifest = tmp_path / "sample" / "manifest.jsonl"
    rows = [json.loads(x) for x in manifest.read_text().splitlines()]
    (tmp_path / "sample" / "junk.mp4").write_bytes(os.urandom(4096))
    rows.append({"video_id": "junk", "path": "junk.mp4", "label": "Normal Driving"})
    write_jsonl(manifest, rows)
    code, text = autodrive(capsys, "ingest", manifest, "--build", build)
    assert code == 3, text
    assert "manifest rows 7 = videos 6 + rejected 1" in text
    assert "junk (" in text and "cannot open as a video" in text
