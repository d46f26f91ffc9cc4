"""Publish refuses a release whose files differ from what their stage recorded, or whose
stages were made from upstream outputs that changed since (issue 22, item 4); the command
each message names makes it right."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from tests.builders.real_builds import autodrive, tiny_recipe
from vlm_autodrive.builders.dataset.folder import data_path
from vlm_autodrive.resources import bundled


def publish(capsys, build, to, version="0.1.0"):
    return autodrive(capsys, "publish", build, "--version", version, "--to", to)


def test_a_truncated_clip_is_refused_and_build_recuts_it(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path)
    build = tmp_path / "build"
    assert autodrive(capsys, "build", recipe)[0] == 0
    clip = pq.read_table(data_path(build, "mcq", "train"))["video"][0].as_py()
    whole = (build / clip).read_bytes()
    (build / clip).write_bytes(whole[: len(whole) // 4])

    code, text = publish(capsys, build, tmp_path / "pub")
    assert code == 2 and clip in text and "not the files the chunk stage cut" in text, text
    assert "autodrive build RECIPE" in text and not (tmp_path / "pub").exists()

    assert autodrive(capsys, "build", recipe)[0] == 0  # what the message says to run
    assert (build / clip).read_bytes() == whole
    code, text = publish(capsys, build, tmp_path / "pub")
    assert code == 0, text


def test_relabel_ingest_chunk_then_publish_is_refused_naming_the_rule_splits(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path)
    build = tmp_path / "build"
    assert autodrive(capsys, "build", recipe)[0] == 0
    manifest = tmp_path / "sample" / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    event = next(r for r in rows if r["label"] == "Collision")
    event["label"] = "Near-Collision"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert autodrive(capsys, "ingest", manifest, "--build", build)[0] == 0
    code, text = autodrive(capsys, "chunk", "--build", build, "--recipe", recipe)
    assert code == 0 and "(cut now 1, of them re-cut after a change 1;" in text, text

    mixture = bundled("recipes", "mixtures/quickstart.yaml")
    code, text = autodrive(capsys, "mix", mixture, "--build", build)  # nor mixed as current
    assert code == 2 and "the rule_splits stage was made from an older chunk/" in text, text
    assert f"autodrive build RECIPE --build {build}` first, then mix" in text

    code, text = publish(capsys, build, tmp_path / "pub")
    assert code == 2, text
    assert "the rule_splits stage was made from an older chunk/clips.parquet" in text
    assert f"autodrive build RECIPE --build {build}" in text and not (tmp_path / "pub").exists()

    assert autodrive(capsys, "build", recipe)[0] == 0
    code, text = publish(capsys, build, tmp_path / "pub")
    assert code == 0, text
    labels = {
        r["clip_id"]: r["label"]
        for r in pq.read_table(build / "chunk" / "clips.parquet").to_pylist()
    }
    for side in ("train", "test"):
        for row in pq.read_table(data_path(tmp_path / "pub" / "v0.1.0", "mcq", side)).to_pylist():
            assert row["label"] == labels[row["clip_id"]]
