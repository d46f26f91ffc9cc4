"""The taxonomy a build was made with is recorded (BUILD/taxonomy.yaml) and used by later
commands given none (issue 22, item 5): a standalone `autodrive ingest` and `chunk` on a
build with a class added through `rules.templates` keep that class."""

from __future__ import annotations

import json

from tests.builders.real_builds import autodrive, new_class_build
from vlm_autodrive.builders.core.taxonomy import load_taxonomy


def test_ingest_and_chunk_alone_use_the_build_taxonomy(tmp_path, capsys):
    recipe = new_class_build(tmp_path, capsys)
    build = tmp_path / "build"
    assert "Sudden Stop" in load_taxonomy(build / "taxonomy.yaml").names
    manifest = tmp_path / "sample" / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    next(r for r in rows if r["label"] == "Collision")["label"] = "Sudden Stop"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))

    code, text = autodrive(capsys, "ingest", manifest, "--build", build)
    assert code == 0 and "unknown label" not in text, text
    settings = ["--window", "2", "--stride", "2", "--margin", "0.5", "--mode", "reencode"]
    code, text = autodrive(capsys, "chunk", "--build", build, *settings)  # no taxonomy given
    assert code == 0 and "other settings" not in text, text
    code, text = autodrive(capsys, "build", recipe)
    assert code == 0, text
