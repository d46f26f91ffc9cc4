"""Run in `.venv-train` by tests/trainer/train/test_collator_trl.py: a plain
`trl.SFTTrainer` given the `mix-*` rows and `VideoSFTCollator` trains one step, and the
clip's pixels reach the model's forward and its vision tower.

Usage: python check_collator_trl.py BUILD CONFIG MODEL OUT; prints one JSON line.
"""

from __future__ import annotations

import json
import sys


def main(build: str, config: str, model_dir: str, out: str) -> None:
    import datasets
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    from vlm_autodrive.trainer import VideoSFTCollator

    rows = datasets.load_dataset(build, config, split="train")
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    collator = VideoSFTCollator.from_processor(
        processor, build, fps=2, max_frames=8, max_pixels=12544, max_length=1024
    )
    collator.prime(rows.select(range(2)))

    seen: dict[str, list] = {"forward_pixel_values_videos": [], "vision_tower_inputs": []}

    def on_forward(module, args, kwargs):
        videos = kwargs.get("pixel_values_videos")
        seen["forward_pixel_values_videos"].append(None if videos is None else list(videos.shape))

    def on_vision(module, args, kwargs):
        pixels = args[0] if args else kwargs.get("hidden_states", kwargs.get("pixel_values"))
        seen["vision_tower_inputs"].append(list(pixels.shape))

    model.register_forward_pre_hook(on_forward, with_kwargs=True)
    inner = getattr(model, "model", model)
    (getattr(inner, "visual", None) or model.visual).register_forward_pre_hook(
        on_vision, with_kwargs=True
    )
    before = next(p for p in model.parameters() if p.requires_grad).detach().clone()
    args = SFTConfig(
        output_dir=out,
        max_steps=1,
        per_device_train_batch_size=2,
        max_length=1024,
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        learning_rate=1e-3,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=rows,
        data_collator=collator,
        processing_class=processor,
    )
    trainer.train()
    after = next(p for p in model.parameters() if p.requires_grad).detach()
    seen["steps"] = trainer.state.global_step
    seen["loss"] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    seen["weights_moved"] = bool((before != after).any())
    print(json.dumps(seen))


if __name__ == "__main__":
    main(*sys.argv[1:5])
