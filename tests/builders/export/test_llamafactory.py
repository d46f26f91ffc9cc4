"""`autodrive export --format llamafactory`: what LLaMA-Factory 0.9.5 reads.

LLaMA-Factory's data modules import torchaudio and peft (not in these environments), so
the file is loaded as its loader loads a `file_name` dataset (`datasets.load_dataset
("json", data_files=..., split="train")`, data/loader.py) and checked by the rules of its
source: the dataset_info entry's columns and tags (data/parser.py `DatasetAttr`), the
sharegpt turn order (data/converter.py `SharegptDatasetConverter`: an optional system
message first, then user/assistant pairs), one `<video>` per video
(data/mm_plugin.py `_validate_messages`) and each video under `media_dir`, which defaults
to `dataset_dir` (`_find_medias`, hparams/data_args.py). Where llamafactory and peft are
given (LLAMAFACTORY_PYTHONPATH), its own parser, DataArguments and converter read the
export in `.venv-train` (check_llamafactory.py).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from vlm_autodrive.builders.dataset.folder import data_path
from vlm_autodrive.cli import main


def test_rows_load_as_llamafactory_reads_them(build, tmp_path, capsys):
    out = tmp_path / "lf"
    assert main(["export", str(build), "--format", "llamafactory", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    mix = pq.read_table(data_path(build, "mix-quick", "train")).to_pylist()
    assert f"{len(mix)} rows of mix-quick (train)" in printed
    assert "dataset: mix-quick_train" in printed

    info = json.loads((out / "dataset_info.json").read_text())
    attr = info["mix-quick_train"]
    assert attr["formatting"] == "sharegpt"
    assert attr["columns"] == {"messages": "messages", "videos": "videos"}
    tags = attr["tags"]
    rows = datasets.load_dataset("json", data_files=[str(out / attr["file_name"])], split="train")
    assert len(rows) == len(mix)
    for row, src in zip(rows, mix):
        messages = row[attr["columns"]["messages"]]
        assert messages[0][tags["role_tag"]] == tags["system_tag"]
        turns = messages[1:]
        assert len(turns) % 2 == 0
        for i, m in enumerate(turns):
            assert m[tags["role_tag"]] == (tags["user_tag"], tags["assistant_tag"])[i % 2]
        videos = row[attr["columns"]["videos"]]
        placeholders = sum(m[tags["content_tag"]].count("<video>") for m in messages)
        assert placeholders == len(videos) == 1
        assert videos == [src["video"]]
        assert os.path.isfile(os.path.join(out, videos[0]))  # media_dir = dataset_dir
        user, answer = turns
        question = src["messages"][-2]["content"][1]["text"]
        assert user[tags["content_tag"]] == "<video>" + question
        assert answer[tags["content_tag"]] == src["messages"][-1]["content"][0]["text"]


def test_same_rows_same_bytes_and_clip_root(build, tmp_path):
    for name in ("a", "b"):
        assert (
            main(["export", str(build), "--format", "llamafactory", "--out", str(tmp_path / name)])
            == 0
        )
    for f in ("mix-quick_train.json", "dataset_info.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    out = tmp_path / "mounted"
    argv = ["export", str(build), "--format", "llamafactory", "--out", str(out)]
    assert main([*argv, "--clip-root", "/mnt/data/build"]) == 0
    rows = json.loads((out / "mix-quick_train.json").read_text())
    assert all(v.startswith("/mnt/data/build/clips/") for r in rows for v in r["videos"])
    assert not (out / "clips").exists()  # absolute paths: no link needed


def test_any_question_answer_config_exports_and_bad_input_exits_2(build, tmp_path, capsys):
    out = tmp_path / "mcq"
    argv = ["export", str(build), "--format", "llamafactory", "--out", str(out)]
    assert main([*argv, "--config", "mcq"]) == 0
    rows = json.loads((out / "mcq_train.json").read_text())
    assert [m["role"] for m in rows[0]["messages"]] == ["user", "assistant"]  # no system
    assert main([*argv, "--config", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no config 'nope'" in err and "mix-quick" in err
    assert main([*argv, "--config", "mcq", "--split", "validation"]) == 2
    assert "has no 'validation' split" in capsys.readouterr().err


LLAMAFACTORY_PATH = os.environ.get("LLAMAFACTORY_PYTHONPATH", "")


@pytest.mark.slow  # ~40 s: torch, transformers and peft import in a subprocess
def test_llamafactorys_own_parser_and_converter_read_the_export(build, tmp_path):
    from tests.trainer.fixtures import TRAIN_PYTHON

    env = dict(os.environ, PYTHONPATH=LLAMAFACTORY_PATH, DISABLE_VERSION_CHECK="1",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")  # fmt: skip
    probe = [str(TRAIN_PYTHON), "-c", "import llamafactory, peft"]
    if not TRAIN_PYTHON.exists() or subprocess.run(probe, env=env, capture_output=True).returncode:
        pytest.skip(
            "LLaMA-Factory does not import in .venv-train: set LLAMAFACTORY_PYTHONPATH to a "
            "folder with llamafactory 0.9.5 and peft unpacked (its data package needs no more)"
        )
    out = tmp_path / "lf"
    assert main(["export", str(build), "--format", "llamafactory", "--out", str(out)]) == 0
    check = Path(__file__).with_name("check_llamafactory.py")
    proc = subprocess.run([str(TRAIN_PYTHON), str(check), str(out), "mix-quick_train"],
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "does not exist in `media_dir`" not in proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["media_dir"] == str(out)  # its default: dataset_dir
    mix = pq.read_table(data_path(build, "mix-quick", "train")).to_pylist()
    assert len(got["rows"]) == len(mix)
    for row, src in zip(got["rows"], mix):
        assert row["_system"] == src["messages"][0]["content"][0]["text"]
        assert row["_prompt"] == [
            {"role": "user", "content": "<video>" + src["messages"][1]["content"][1]["text"]}
        ]
        assert row["_response"] == [
            {"role": "assistant", "content": src["messages"][2]["content"][0]["text"]}
        ]
        assert row["_videos"] == [os.path.join(out, src["video"])]
        assert os.path.isfile(row["_videos"][0])
