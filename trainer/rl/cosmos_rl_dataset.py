"""cosmos-rl's custom-dataset entry point for `autodrive export-rl --format cosmos-rl`.

Written against cosmos-rl's source (nvidia-cosmos/cosmos-rl: `launcher/worker_entry.py`
`main(dataset=...)`, `dispatcher/data/__init__.py` `RLDataset`, the Qwen2.5-VL data
packer), not run here (no cosmos-rl, no GPU). Launch, with the exported JSONL named in
the config's `[custom]` table (recipes/train/cosmos_rl_grpo.toml):

    cosmos-rl --config recipes/train/cosmos_rl_grpo.toml trainer/rl/cosmos_rl_dataset.py

cosmos-rl calls `setup(config)`, then `__getitem__(i)` for the rollout prompt (a
conversation; Qwen2.5-VL's packer hands its video part to qwen-vl-utils, which reads the
`file://` clip and its `fps` / `max_frames` / `max_pixels` keys) and
`get_reference_answer(i)` for the rewards (the gold letter, which cosmos-rl's
`single_choice` reward compares with the `<answer>` block). The JSONL is read with
`json`, not `datasets`: Arrow would give every content part every key (`"video": None`
on text parts), which qwen-vl-utils would take for a video.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class AutodriveRLDataset:
    """The exported prompt rows (`custom.autodrive.prompts`, a train.jsonl)."""

    def setup(self, config, *args, **kwargs) -> None:
        path = Path(config.custom["autodrive"]["prompts"])
        with path.open(encoding="utf-8") as f:
            self.rows = [json.loads(line) for line in f if line.strip()]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx: int) -> list[dict[str, Any]]:
        return self.rows[idx]["prompt"]

    def get_reference_answer(self, idx: int) -> str:
        return self.rows[idx]["answer"]


def main() -> None:  # pragma: no cover - needs cosmos-rl on a GPU cluster
    from cosmos_rl.launcher.worker_entry import main as launch_worker

    launch_worker(dataset=lambda config: AutodriveRLDataset())


if __name__ == "__main__":  # pragma: no cover
    main()
