"""A broken build is refused before anything is sent (exit 2, the message names the file),
and nothing private (the build's absolute path, server URLs) reaches a release."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from tests.builders.small_builds import read, rule_build
from vlm_autodrive.builders.dataset.folder import ConfigTables, data_path, write_dataset_folder
from vlm_autodrive.builders.generate.failures import FAILURES_SCHEMA
from vlm_autodrive.cli import main


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return rule_build(tmp_path_factory.mktemp("checks") / "build", videos=16)


@pytest.fixture
def build(built, tmp_path):
    return Path(shutil.copytree(built, tmp_path / "build"))


def publish_to(build: Path, to: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main(["publish", str(build), "--version", "0.1.0", "--to", str(to), *extra])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_an_empty_or_missing_clip_is_refused_naming_it(build, tmp_path, capsys):
    clip = read(build, "mcq")["video"][0].as_py()
    (build / clip).write_bytes(b"")
    code, text = publish_to(build, tmp_path / "pub", capsys)
    assert code == 2 and "empty (0 bytes)" in text and clip in text
    (build / clip).unlink()
    code, text = publish_to(build, tmp_path / "pub", capsys)
    assert code == 2 and "are missing" in text and clip in text
    assert not (tmp_path / "pub").exists() and "Traceback" not in text


@pytest.mark.parametrize(
    ("breakage", "said"),
    [
        ("assignment", r"split/assignment.parquet not found"),
        ("provenance", r"provenance.json does not parse"),
        ("card", r"README.md declares configs \['mcq'\] but provenance.json has"),
        ("recipe", r"the recipe asks for configs \['failures', 'vqa'\]"),
        ("data", r"data files changed.*data/mcq/train"),
    ],
)
def test_a_broken_build_is_refused_naming_the_file(build, tmp_path, capsys, breakage, said):
    if breakage == "assignment":
        (build / "split/assignment.parquet").unlink()
    elif breakage == "provenance":
        (build / "provenance.json").write_text('{"configs": ')
    elif breakage == "card":
        card = (build / "README.md").read_text()
        start = card.index("- config_name: caption_metadata")
        end = card.index("- config_name: mcq")
        (build / "README.md").write_text(card[:start] + card[end:])
    elif breakage == "recipe":
        prov = json.loads((build / "provenance.json").read_text())
        prov["recipe"] = {"generate": {"configs": {"vqa": {}}}}
        (build / "provenance.json").write_text(json.dumps(prov))
    else:
        shutil.copy(data_path(build, "mcq", "test"), data_path(build, "mcq", "train"))
    code, text = publish_to(build, tmp_path / "pub", capsys)
    assert code == 2, text
    assert re.search(said, text), text
    assert not (tmp_path / "pub").exists()


def test_a_previous_release_that_does_not_exist_is_refused(build, tmp_path, capsys):
    code, text = publish_to(build, tmp_path / "pub", capsys, "--previous", "/nonexistent")
    assert code == 2 and "--previous /nonexistent: no such folder" in text
    code, text = publish_to(build, tmp_path / "pub", capsys, "--previous", str(tmp_path))
    assert code == 2 and "not a release folder" in text


def test_no_build_path_or_server_url_reaches_the_release(build, tmp_path, capsys):
    mcq = read(build, "mcq").to_pylist()[:2]
    url = "http://127.0.0.1:8123/v1"
    fails = [
        {**{k: r[k] for k in ("clip_id", "video_id", "label", "split", "video")},
         "id": f"f{i}", "request_id": "r", "config": "vqa", "sample": 0, "kind": "error",
         "reason": f"{url}: HTTP 429 Too Many Requests", "raw_output": None, "reasoning": None,
         "attempts": 3, "generator": "m@rev", "template": "t@h"}
        for i, r in enumerate(mcq)
    ]  # fmt: skip
    table = pa.Table.from_pylist(fails, schema=FAILURES_SCHEMA)
    config = ConfigTables("failures", "failures", "pipeline", "", {"train": table})
    write_dataset_folder(build, [config], stage="model_splits", stage_info={}, top={})
    prov = json.loads((build / "provenance.json").read_text())
    root = str(build.resolve())
    prov["manifest"] = {"path": f"{root}/sample/manifest.jsonl", "sha256": None}
    prov["recipe"] = {
        "build_dir": root,
        "taxonomy": "/home/someone/taxonomy.yaml",
        "generate": {"models": {"vlm": {"model": "Qwen/Qwen2.5-VL-7B-Instruct",
                                        "revision": "abc", "base_urls": [url]}}},
    }  # fmt: skip
    (build / "provenance.json").write_text(json.dumps(prov))
    code, text = publish_to(build, tmp_path / "pub", capsys)
    assert code == 0, text
    rel = tmp_path / "pub" / "v0.1.0"
    for p in rel.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert root.encode() not in data and b"127.0.0.1" not in data, p
            assert b"/home/someone" not in data, p
    out = json.loads((rel / "provenance.json").read_text())
    assert out["manifest"]["path"] == "sample/manifest.jsonl"
    assert out["recipe"]["build_dir"] == "."
    assert out["recipe"]["generate"]["models"]["vlm"] == {
        "model": "Qwen/Qwen2.5-VL-7B-Instruct",
        "revision": "abc",
    }
    reasons = read(rel, "failures")["reason"].to_pylist()
    assert reasons == ["<server>: HTTP 429 Too Many Requests"] * 2
    assert url in read(build, "failures")["reason"][0].as_py()  # the build keeps its own
