"""`VideoGRPOTrainer`: TRL's `GRPOTrainer` with checkpoints reloaded through
`from_pretrained` (the SFT trainer's fix, trainer/train/video_trainer.py). The video
itself arrives as frames in the `images` column (trainer/rl/trainer.py). This module
imports TRL at the top: `trainer.py` imports it only inside the function that trains.
"""

from __future__ import annotations

from trl import GRPOTrainer

from vlm_autodrive.trainer.train.video_trainer import FromPretrainedReload


class VideoGRPOTrainer(FromPretrainedReload, GRPOTrainer):
    """GRPOTrainer with a key-renaming-safe checkpoint reload."""
