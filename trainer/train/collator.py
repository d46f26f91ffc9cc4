"""The video collator: conversation rows in, a padded model batch with labels out.

TRL's `DataCollatorForVisionLanguageModeling` handles images only, so this is the part
TRL lacks: per row, load the clip (path relative to the dataset root) with our frame
sampler, put the frames into the video part, render the chat template and run the
processor (`apply_chat_template(tokenize=True, return_assistant_tokens_mask=True)`),
then mask every label outside the template's `{% generation %}` spans (assistant
turns) with -100.

Nothing is truncated: cutting a sequence could cut video placeholder tokens away from
their pixels. A row longer than `max_length` is skipped and counted, so is a clip that
fails to decode (with a warning); the batch goes on with the other rows. When every row
of a batch is skipped, the batch is one known-good row (primed before training) with
all labels masked: it contributes no loss, but every rank still runs the vision tower,
so ZeRO-3's parameter gathering stays in step across ranks.

The batch carries the skip counts as `_skipped` (decode failures, too long), which the
trainer pops before the forward pass; a counter here would be lost in dataloader worker
processes. `VideoSFTCollator.from_processor` (the public way, for a plain
`trl.SFTTrainer`) leaves them out, since a plain trainer passes every key to the model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vlm_autodrive.trainer.video import VideoDecodeError, VideoSettings, sample_video

log = logging.getLogger(__name__)

IGNORE = -100
SKIPPED = "_skipped"


class VideoSFTCollator:
    """The video collator for a plain `trl.SFTTrainer` (`data_collator=...`).

    TRL 1.16 has no video column: given the `mix-*` rows alone, `SFTTrainer` trains on
    their text tokens and the model never sees a pixel. This collator decodes each row's
    clip (PyAV, at `fps`, at most `max_frames`, within `max_pixels`), renders the chat
    template with the frames and masks every label outside the assistant turns.

    In: rows with a `messages` column as `autodrive mix` writes it (system, user with one
    video part `{"type": "video", "video": "clips/..."}` then the question, assistant);
    clip paths relative to `root`, the build or release folder (a Hub snapshot folder
    too). Out: a padded batch (`input_ids`, `attention_mask`, `labels`,
    `pixel_values_videos`, `video_grid_thw`, ...) for the model's forward.

    Example (the trainer must keep the `messages` column and not tokenize it itself)::

        import datasets
        from transformers import AutoModelForImageTextToText, AutoProcessor
        from trl import SFTConfig, SFTTrainer

        from vlm_autodrive.trainer import VideoSFTCollator

        build = "build/quickstart"
        rows = datasets.load_dataset(build, "mix-quickstart", split="train")
        processor = AutoProcessor.from_pretrained("nvidia/Cosmos-Reason1-7B")
        model = AutoModelForImageTextToText.from_pretrained("nvidia/Cosmos-Reason1-7B")
        collator = VideoSFTCollator.from_processor(
            processor, build, fps=2, max_frames=32, max_pixels=81920, max_length=8192
        )
        args = SFTConfig(
            output_dir="build/train/plain-trl",
            max_length=8192,
            remove_unused_columns=False,  # the collator reads `messages`
            dataset_kwargs={"skip_prepare_dataset": True},  # video is encoded per batch
        )
        SFTTrainer(
            model=model,
            args=args,
            train_dataset=rows,
            data_collator=collator,
            processing_class=processor,
        ).train()

    A row whose clip fails to decode, or longer than `max_length` (nothing is truncated:
    a cut could separate video tokens from their pixels), is skipped with a warning; call
    `prime(rows)` first so that a batch whose rows are all skipped can still be formed.
    `autodrive train` uses this collator with its own trainer (skip counts, ZeRO-3).

    The constructor takes `processor` (a Qwen2.5-VL one, or any with the same video
    interface), `root`, `settings` (frame sampling), `max_length`, `chat_template` (None:
    the processor's) and `report_skipped` (put the skip counts into each batch as
    `_skipped`, for a trainer that pops them).
    """

    def __init__(
        self,
        processor,
        root: Path,
        settings: VideoSettings,
        max_length: int,
        chat_template: str | None = None,
        report_skipped: bool = True,
    ):
        self.processor = processor
        self.root = Path(root)
        self.settings = settings
        self.max_length = max_length
        self.chat_template = chat_template
        self.report_skipped = report_skipped
        self.fallback: dict[str, Any] | None = None

    @classmethod
    def from_processor(
        cls,
        processor,
        root: str | Path,
        *,
        fps: float,
        max_frames: int,
        max_pixels: int,
        max_length: int,
    ) -> VideoSFTCollator:
        """A collator for `processor`'s model: frames resized in multiples of its patch
        size, frame counts in multiples of its temporal patch, and a chat template with
        TRL's `{% generation %}` marks when the processor's has none (the assistant-only
        labels need them). Skip counts are not put into the batches. Raises ValueError
        when TRL has no training template for this model."""
        from trl.chat_template_utils import get_training_chat_template, has_generation_markers

        template = None
        if not has_generation_markers(processor.chat_template):
            template = get_training_chat_template(processor)
        vp = processor.video_processor
        settings = VideoSettings(
            fps=fps,
            max_frames=max_frames,
            max_pixels=max_pixels,
            factor=vp.patch_size * vp.merge_size,
            frame_multiple=vp.temporal_patch_size,
        )
        return cls(processor, Path(root), settings, max_length, template, report_skipped=False)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        encoded, decode_failed, too_long = [], 0, 0
        for row in rows:
            try:
                item = self.encode(row)
            except VideoDecodeError as e:
                log.warning("skipping row %s: %s", row.get("id", "?"), e)
                decode_failed += 1
                continue
            if item["input_ids"].shape[1] > self.max_length:
                too_long += 1
                continue
            encoded.append(item)
        if not encoded:
            if self.fallback is None:
                raise RuntimeError(
                    "every row of the batch was skipped and no fallback is primed "
                    "(call collator.prime(rows) before training)"
                )
            encoded = [self.fallback]
        batch = self.pad(encoded)
        if self.report_skipped:
            batch[SKIPPED] = torch.tensor([decode_failed, too_long])
        elif too_long:
            log.warning("skipped %d row(s) longer than max_length %d", too_long, self.max_length)
        return batch

    def encode(self, row: dict[str, Any]) -> dict[str, Any]:
        """One row -> processor outputs (batch of one) plus `labels`. Raises
        VideoDecodeError when its clip cannot be decoded."""
        messages, clips = [], []
        for m in row["messages"]:
            content = m["content"]
            if not isinstance(content, str):
                # Arrow gives every part all struct fields (`text: None` on a video part):
                # drop the empty ones, or templates testing "'video' in part" misread them.
                content = [{k: v for k, v in part.items() if v is not None} for part in content]
                for part in content:
                    if part.get("type") == "video":
                        clips.append(sample_video(self.root / part["video"], self.settings))
                        part["video"] = clips[-1].frames
            messages.append({"role": m["role"], "content": content})
        out = self.processor.apply_chat_template(
            [messages],
            chat_template=self.chat_template,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            return_assistant_tokens_mask=True,
            processor_kwargs={
                "video_metadata": [c.metadata for c in clips],
                "do_sample_frames": False,  # frames were sampled above, at the recipe's fps
                "do_resize": False,  # and resized to the pixel budget, in multiples of 28
            },
        )
        mask = out.pop("assistant_masks")
        labels = out["input_ids"].clone()
        labels[mask == 0] = IGNORE
        out["labels"] = labels
        return dict(out)

    def prime(self, rows) -> None:
        """Keep the first row of `rows` that decodes as the all-skipped fallback, with
        every label masked (the caller checks it fits). Raises ValueError when none of
        them decodes."""
        reasons = []
        for row in rows:
            try:
                item = self.encode(row)
            except VideoDecodeError as e:
                reasons.append(str(e))
                continue
            item["labels"][:] = IGNORE
            self.fallback = item
            return
        raise ValueError("none of the first rows decodes: " + "; ".join(reasons[:3]))

    def pad(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Right-pad the per-token tensors (shape (1, T)) to the longest row; concatenate
        the rest (pixel patches, grids, per-video timings) along their first axis."""
        import torch

        pad_id = self.processor.tokenizer.pad_token_id
        longest = max(i["input_ids"].shape[1] for i in items)
        pad_value = {"input_ids": pad_id, "labels": IGNORE}
        batch = {}
        for key in items[0]:
            values = [i[key] for i in items]
            if all(v.shape == i["input_ids"].shape for v, i in zip(values, items)):
                fill = pad_value.get(key, 0)
                values = [
                    torch.nn.functional.pad(v, (0, longest - v.shape[1]), value=fill)
                    for v in values
                ]
            batch[key] = torch.cat(values, dim=0)
        return batch
