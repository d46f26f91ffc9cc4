"""`mode: smart` is the default (issue 24, item 5). A build cut with the old default
(`reencode`) is refused, as any change of settings is, and the message says the default
changed and names both ways on: keep the clips with `chunk.mode: reencode`, or re-cut
them as smart with --force. A recipe that sets the mode itself gets the usual message."""

from __future__ import annotations

import json

import yaml

from tests.builders.real_builds import autodrive, clip_states
from tests.conftest import make_video, write_jsonl
from vlm_autodrive.builders.core.sections import ChunkConfig
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.stage import run_ingest

TAX = load_taxonomy()
WINDOWS = {"window": 2.0, "stride": 2.0, "margin": 0.5, "workers": 1}


def _recipe(root, name, **chunk):
    path = root / name
    recipe = {"manifest": str(root / "m.jsonl"), "build_dir": str(root / "build")}
    path.write_text(yaml.safe_dump({**recipe, "chunk": {**WINDOWS, **chunk}}))
    return path


def test_a_build_cut_with_the_old_default_is_told_the_default_changed(tmp_path, capsys):
    make_video(tmp_path / "v.mp4", seconds=4, gop=15)
    rows = [{"video_id": "v", "path": "v.mp4", "label": "Normal Driving"}]
    run_ingest(write_jsonl(tmp_path / "m.jsonl", rows), tmp_path / "build", TAX, progress=False)
    build = tmp_path / "build"
    # Cut as a build made before smart was the default: settings.json says reencode.
    keep = _recipe(tmp_path, "keep", mode="reencode")
    assert autodrive(capsys, "chunk", "--build", build, "--recipe", keep)[0] == 0
    before = clip_states(build)
    assert ChunkConfig().mode == "smart"

    code, text = autodrive(capsys, "chunk", "--build", build, "--recipe", _recipe(tmp_path, "a"))
    assert code == 2, text
    assert "the default is now 'smart'" in text
    assert "set `chunk.mode: reencode` in the recipe" in text
    assert "re-run with --force" in text
    assert clip_states(build) == before  # refused: nothing re-cut

    # A recipe that asks for smart itself is told what differs, as for any setting.
    explicit = _recipe(tmp_path, "b", mode="smart")
    code, text = autodrive(capsys, "chunk", "--build", build, "--recipe", explicit)
    assert code == 2 and "chunk.mode: 'reencode' -> 'smart'" in text, text
    assert "default" not in text

    # Another setting changed as well: the usual message, naming both differences.
    other = _recipe(tmp_path, "c", crf=30)
    code, text = autodrive(capsys, "chunk", "--build", build, "--recipe", other)
    assert code == 2 and "chunk.crf: 23 -> 30" in text and "'reencode' -> 'smart'" in text

    # The first way on: keep the clips.
    code, text = autodrive(capsys, "chunk", "--build", build, "--recipe", keep)
    assert code == 0, text
    assert clip_states(build) == before

    # The second: re-cut as smart.
    code, text = autodrive(
        capsys, "chunk", "--build", build, "--recipe", _recipe(tmp_path, "a"), "--force"
    )
    assert code == 0, text
    settings = json.loads((build / "chunk" / "settings.json").read_text())
    assert settings["chunk"]["mode"] == "smart"
    assert clip_states(build).keys() == before.keys() and clip_states(build) != before
