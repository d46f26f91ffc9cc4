"""`VideoSFTTrainer`: TRL's `SFTTrainer` plus the two things video SFT needs here.

In: what SFTTrainer takes. Out: the same training, plus (1) the collator's skip counts
(clips that failed to decode, rows over max_length) taken out of each batch and summed,
and (2) checkpoints reloaded through `from_pretrained`. This module imports torch and TRL
at the top: `trainer.py` imports it only inside the function that trains.
"""

from __future__ import annotations

import torch
from trl import SFTTrainer

from vlm_autodrive.trainer.train.collator import SKIPPED


class FromPretrainedReload:
    """A transformers Trainer mixin: checkpoints reloaded through `from_pretrained`
    (shared with the GRPO trainer, trainer/rl/video_grpo.py)."""

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        # Without DeepSpeed/FSDP, transformers' Trainer reloads a checkpoint's weights
        # with a plain `load_state_dict(strict=False)`, skipping the key renaming that
        # `from_pretrained` applies; Qwen2.5-VL saves its original key layout, so every
        # weight would silently keep its initial value. Load through from_pretrained.
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        model = model if model is not None else self.model
        saved = type(model).from_pretrained(resume_from_checkpoint, dtype=model.dtype)
        model.load_state_dict(saved.state_dict(), strict=True)


class VideoSFTTrainer(FromPretrainedReload, SFTTrainer):
    """SFTTrainer with skip counting and a key-renaming-safe checkpoint reload."""

    skipped = torch.zeros(2, dtype=torch.long)  # decode failures, too long (this run)

    def training_step(self, model, inputs, num_items_in_batch=None):
        counts = inputs.pop(SKIPPED, None)
        if counts is not None:
            self.skipped = self.skipped + counts.detach().cpu()
        return super().training_step(model, inputs, num_items_in_batch)
