"""Training and evaluation on the built datasets.

`VideoSFTCollator` (trainer/train/collator.py) is the public piece for a plain
`trl.SFTTrainer`: TRL has no video column, and this collator is what feeds the clips'
frames to the model (see its docstring for a usage example). It is imported on first use,
so `import vlm_autodrive.trainer` stays light.
"""

from __future__ import annotations

__all__ = ["VideoSFTCollator"]


def __getattr__(name: str):
    if name == "VideoSFTCollator":
        from vlm_autodrive.trainer.train.collator import VideoSFTCollator

        return VideoSFTCollator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
