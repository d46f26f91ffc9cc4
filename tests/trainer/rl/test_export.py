"""`autodrive export-rl` on a real built sample: both formats, the eval's reasoning prompt,
reasoning_mcq rows adding prompts without duplicating them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.trainer.fixtures import make_build
from vlm_autodrive.builders.dataset.folder import data_path, write_data_file
from vlm_autodrive.builders.mix.conversations import load_system_prompt
from vlm_autodrive.cli import main
from vlm_autodrive.trainer.rl.export import export_rl


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    build = make_build(tmp_path_factory.mktemp("rl") / "sample")
    # A reasoning_mcq config: the first mcq train row again (a duplicate prompt), and one
    # row of a clip the mcq split does not ask about.
    mcq = pq.read_table(data_path(build, "mcq", "train"))
    rows = mcq.slice(0, 2).to_pylist()
    rows[1]["question"] += " (asked again)"
    write_data_file(build, "reasoning_mcq", "train", type(mcq).from_pylist(rows, schema=mcq.schema))
    return build


def test_trl_export(build, tmp_path, capsys):
    mcq = pq.read_table(data_path(build, "mcq", "train")).to_pylist()
    code = main(["export-rl", str(build), "--out", str(tmp_path / "trl")])
    assert code == 0
    assert f"{len(mcq) + 1} prompts" in capsys.readouterr().out
    rows = pq.read_table(tmp_path / "trl/train.parquet").to_pylist()
    assert len(rows) == len(mcq) + 1
    by_id = {r["id"]: r for r in mcq}
    for r in rows:
        src = by_id[r["id"]]
        assert r["answer"] == src["answer_letter"] and r["options"] == src["options"]
        assert r["video"] == src["video"] and (build / r["video"]).is_file()
        system, user = r["prompt"]
        assert system["role"] == "system"
        assert system["content"][0]["text"] == load_system_prompt("driving_reasoner")
        video, text = user["content"]
        assert video == {"type": "video", "text": None, "video": src["video"]}
        # the eval's reasoning-mode prompt: the question, then the think/answer instruction
        assert text["text"].startswith(r["question"]) and "<answer>" in text["text"]
    assert [r["source_config"] for r in rows].count("reasoning_mcq") == 1
    meta = json.loads((tmp_path / "trl/export.json").read_text())
    assert meta["duplicates"] == 1 and meta["per_config"] == {"mcq": len(mcq), "reasoning_mcq": 2}
    # TRL reads it as a dataset with a conversational prompt column
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "trl/train.parquet"))
    assert ds["train"][0]["prompt"][1]["content"][0]["type"] == "video"


def test_cosmos_rl_export_from_a_release_like_folder(build, tmp_path):
    release = tmp_path / "v1.0.0"
    shutil.copytree(build / "data", release / "data")
    shutil.copytree(build / "clips", release / "clips")
    res = export_rl(
        release,
        tmp_path / "cosmos",
        "cosmos-rl",
        configs=("mcq",),
        video_kwargs={"fps": 2.0, "max_frames": 8},
    )
    lines = (tmp_path / "cosmos/train.jsonl").read_text().splitlines()
    assert len(lines) == res.rows == res.per_config["mcq"]
    row = json.loads(lines[0])
    assert set(row) >= {"prompt", "answer", "video", "options"}
    assert len(row["answer"]) == 1
    part, text = row["prompt"][1]["content"]
    assert part["video"].startswith("file://") and Path(part["video"][7:]).is_file()
    assert part == {"type": "video", "video": row["video"], "fps": 2.0, "max_frames": 8}
    assert text == {"type": "text", "text": text["text"]}  # only its own keys
    # another machine's mount point for the clips
    res = export_rl(release, tmp_path / "c2", "cosmos-rl", clip_root="/data/autodrive/v1.0.0")
    row = json.loads((tmp_path / "c2/train.jsonl").read_text().splitlines()[0])
    assert row["video"].startswith("file:///data/autodrive/v1.0.0/clips/")


def test_bad_input(build, tmp_path, capsys):
    assert main(["export-rl", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert main(["export-rl", str(build), "--out", str(tmp_path / "o"), "--configs", "vqa"]) == 2
    assert "no config 'vqa'" in capsys.readouterr().err
