"""Sources that go missing are unavailable, not removed (issue 22, item 3).

A source folder renamed away (an unmounted disk) stops `build`, `ingest` and `chunk` with
exit 2 naming the missing files, before anything changes; renamed back, a normal rebuild
re-cuts nothing. `--prune-missing` drops them on purpose."""

from __future__ import annotations

import json

from tests.builders.real_builds import autodrive, clip_states, tiny_recipe


def test_renamed_source_folder_stops_the_build_and_deletes_nothing(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path)
    build = tmp_path / "build"
    code, text = autodrive(capsys, "build", recipe)
    assert code == 0, text
    before = clip_states(build)
    table = (build / "chunk" / "clips.parquet").read_bytes()
    assert len(before) > 10

    videos = tmp_path / "sample" / "videos"
    videos.rename(tmp_path / "sample" / "videos-away")
    code, text = autodrive(capsys, "build", recipe)
    assert code == 2, text
    assert "6 of 6 video files are missing" in text and "--prune-missing" in text
    assert str(videos / "v0000.mp4") in text
    assert "Traceback" not in text
    code, text = autodrive(
        capsys, "ingest", tmp_path / "sample" / "manifest.jsonl", "--build", build
    )
    assert code == 2 and "6 of 6 video files are missing" in text, text
    # chunk alone has nothing to cut (every clip is intact): it needs no source file
    code, text = autodrive(capsys, "chunk", "--build", build, "--recipe", recipe)
    assert code == 0 and "cut now 0" in text, text
    assert clip_states(build) == before  # no clip deleted or touched
    assert (build / "chunk" / "clips.parquet").read_bytes() == table

    (tmp_path / "sample" / "videos-away").rename(videos)
    code, text = autodrive(capsys, "build", recipe)
    assert code == 0, text
    assert "cut now 0" in text
    assert clip_states(build) == before  # nothing re-cut


def test_chunk_refuses_to_recut_a_video_whose_source_is_gone(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path)
    build = tmp_path / "build"
    assert autodrive(capsys, "build", recipe)[0] == 0
    before = clip_states(build)
    victim = sorted(before)[0]
    (build / victim).unlink()  # this video must be cut again ...
    videos = tmp_path / "sample" / "videos"
    videos.rename(tmp_path / "away")  # ... but its source is gone
    code, text = autodrive(capsys, "chunk", "--build", build, "--recipe", recipe)
    assert code == 2 and "1 of 6 video files are missing" in text, text
    assert clip_states(build) == {k: v for k, v in before.items() if k != victim}


def test_prune_missing_drops_the_videos_and_their_clips(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path)
    build = tmp_path / "build"
    assert autodrive(capsys, "build", recipe)[0] == 0
    manifest = tmp_path / "sample" / "manifest.jsonl"
    gone = json.loads(manifest.read_text().splitlines()[0])
    (tmp_path / "sample" / gone["path"]).unlink()
    code, text = autodrive(capsys, "build", recipe, "--prune-missing")
    assert code == 3, text  # done, with a counted reject
    rejects = (build / "ingest" / "rejects.jsonl").read_text()
    assert gone["video_id"] in rejects and "not found" in rejects
    assert not (build / "clips" / gone["video_id"]).exists()
    assert "removed 1" in text
