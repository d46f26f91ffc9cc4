"""`autodrive export --format llava`: LLaVA-style JSON as Qwen-VL's finetune scripts read it.

Their loader (QwenLM/Qwen2.5-VL `qwen-vl-finetune/qwenvl/data/data_processor.py`) needs
torch and its own repository, so its rules are checked here as `_build_messages` applies
them: `from` is `human` or else the assistant, the human text is split on `<video>`
(one placeholder per entry of `video`, none left over) and each clip is
`data_path / video` (`_make_abs_paths`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq

from vlm_autodrive.builders.dataset.folder import data_path
from vlm_autodrive.cli import main


def build_messages(item: dict, base: Path) -> list[dict]:
    """The messages qwen-vl-finetune's `_build_messages` makes of one entry."""
    videos = item.get("video") or []
    pool = [
        {"type": "video", "video": str((base / v).resolve())}
        for v in ([videos] if isinstance(videos, str) else videos)
    ]
    messages = []
    for turn in item["conversations"]:
        if turn["from"] == "human":
            content = []
            for seg in re.split(r"(<image>|<video>)", turn["value"]):
                if seg == "<video>":
                    content.append(pool.pop(0))  # IndexError: more placeholders than videos
                elif seg.strip():
                    content.append({"type": "text", "text": seg.strip()})
            messages.append({"role": "user", "content": content})
        else:
            messages.append(
                {"role": "assistant", "content": [{"type": "text", "text": turn["value"]}]}
            )
    assert not pool, "videos left without a placeholder"
    return messages


def test_entries_build_the_messages_qwen_vl_finetune_makes(build, tmp_path, capsys):
    out = tmp_path / "llava"
    assert main(["export", str(build), "--format", "llava", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "system turn(s) left out" in printed and '"data_path"' in printed
    meta = json.loads((out / "export.json").read_text())
    items = json.loads((out / "mix-quick_train.json").read_text())
    mix = pq.read_table(data_path(build, "mix-quick", "train")).to_pylist()
    assert len(items) == len(mix)
    for item, src in zip(items, mix):
        assert item["id"] == src["id"] and item["video"] == src["video"]
        human, gpt = item["conversations"]
        assert gpt["from"] == "gpt"
        assert human["from"] == "human" and human["value"].startswith("<video>\n")
        user, assistant = build_messages(item, Path(meta["data_path"]))
        video, text = user["content"]
        assert Path(video["video"]).is_file()
        assert text["text"] == src["messages"][1]["content"][1]["text"].strip()
        assert assistant["content"][0]["text"] == src["messages"][2]["content"][0]["text"]
