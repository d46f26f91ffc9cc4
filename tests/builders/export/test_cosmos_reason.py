"""`autodrive export --format cosmos-reason`: what Cosmos-Reason's SFT example reads.

Its loader (nvidia-cosmos/cosmos-reason1 `examples/post_training_hf/scripts/sft.py`)
needs torch and cosmos-rl, so its steps are run here as it does them:
`datasets.load_from_disk(path)`, then per row `json.loads(sample["conversations"])`
(`conversation_column_name` in configs/sft.toml) and `set_vision_kwargs`, which adds
the vision settings to every part whose `type` is `video` (cosmos_reason1_utils/text.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow.parquet as pq

from vlm_autodrive.builders.dataset.folder import data_path
from vlm_autodrive.cli import main


def set_vision_kwargs(conversation: list[dict], vision_kwargs: dict) -> None:
    """As cosmos_reason1_utils.text.set_vision_kwargs does it."""
    for msg in conversation:
        content = msg["content"]
        for part in [content] if isinstance(content, str) else content:
            if isinstance(part, dict) and part.get("type") in ("image", "video"):
                part.update(vision_kwargs)


def test_conversations_load_as_the_sft_example_reads_them(build, tmp_path):
    out = tmp_path / "cr"
    assert main(["export", str(build), "--format", "cosmos-reason", "--out", str(out)]) == 0
    mix = pq.read_table(data_path(build, "mix-quick", "train")).to_pylist()
    dataset = datasets.load_from_disk(str(out))
    assert len(dataset) == len(mix)
    for sample, src in zip(dataset, mix):
        conversation = json.loads(sample["conversations"])
        set_vision_kwargs(conversation, {"fps": 1, "max_pixels": 81920})
        system, user, assistant = conversation
        assert system == {"role": "system", "content": src["messages"][0]["content"][0]["text"]}
        video, text = user["content"]
        assert video == {"type": "video", "video": video["video"], "fps": 1, "max_pixels": 81920}
        assert Path(video["video"]).is_absolute() and Path(video["video"]).is_file()
        assert video["video"] == str(build / src["video"])
        assert text == {"type": "text", "text": src["messages"][1]["content"][1]["text"]}
        assert assistant == {
            "role": "assistant",
            "content": src["messages"][2]["content"][0]["text"],
        }
        assert sample["id"] == src["id"]


def test_same_rows_same_bytes_and_a_foreign_folder_is_kept(build, tmp_path, capsys):
    for name in ("a", "b"):
        assert (
            main(["export", str(build), "--format", "cosmos-reason", "--out", str(tmp_path / name)])
            == 0
        )
    files = sorted(p.name for p in (tmp_path / "a").iterdir() if p.name != "export.json")
    assert files == ["data-00000-of-00001.arrow", "dataset_info.json", "state.json"]
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    # exporting again into its own folder replaces it
    assert (
        main(["export", str(build), "--format", "cosmos-reason", "--out", str(tmp_path / "a")]) == 0
    )
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    argv = ["export", str(build), "--format", "cosmos-reason", "--out", str(mine)]
    assert main(argv) == 2
    assert "not an earlier cosmos-reason export" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "keep me"
