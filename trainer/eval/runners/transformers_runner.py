"""Run a local vision-language model in process with transformers, on the CPU or a GPU.

In: a model folder `from_pretrained` can load (Qwen2.5-VL and Cosmos-Reason1 in
particular; any model whose processor takes `videos=`), `VideoSettings`, and
`EvalItem`s. Out: `RunnerOutput`s with the decoded new tokens, greedy decoding.

Frames come from `trainer/video.py`, exactly as in training: `fps` frames a second, at
most `max_frames`, each resized to fit `max_pixels` (default: the processor's own
per-frame budget). The processor is told not to sample again (`do_sample_frames=False`)
and gets the frames' metadata, from which Qwen2.5-VL derives the time between temporal
patches. Needs torch and transformers with torchvision: the `.venv-train` environment.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from vlm_autodrive.trainer.eval.runners.base import EvalItem, RunnerOutput, VideoSettings


class TransformersRunner:
    """Greedy generation, one clip at a time (videos differ in length; batching them
    would pad vision tokens for no gain on the CPU and little on one GPU)."""

    def __init__(
        self, model: str | Path, video: VideoSettings, device: str = "auto", dtype: str = "auto"
    ):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model_id = str(model)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            # bf16 on GPUs (as trained); float32 on the CPU, where bf16 matmuls are slow.
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        self.device, self.dtype = device, dtype
        self.processor = AutoProcessor.from_pretrained(model)
        self.model = AutoModelForImageTextToText.from_pretrained(
            model, dtype=getattr(torch, dtype)
        ).to(device)
        self.model.eval()
        self.video = video
        self._sampling = self._video_sampling(video)
        eos = self.model.generation_config.eos_token_id
        self._eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])

    def _video_sampling(self, video: VideoSettings):
        """trainer/video.py's settings, filling what `video` leaves open from the
        processor (its per-frame pixel budget) or the harness defaults."""
        from vlm_autodrive.trainer.video import VideoSettings as SampleSettings

        vp = getattr(self.processor, "video_processor", None)
        size = getattr(vp, "size", None) or {}
        budget = video.max_pixels or size.get("longest_edge") or getattr(vp, "max_pixels", None)
        if not budget:
            raise ValueError("the processor states no pixel budget; pass --max-pixels")
        factor = getattr(vp, "patch_size", 14) * getattr(vp, "merge_size", 2)
        return SampleSettings(
            fps=video.fps or 2.0,
            max_frames=video.max_frames or 10_000,
            max_pixels=int(budget),
            factor=factor,
            frame_multiple=getattr(vp, "temporal_patch_size", 2),
        )

    def describe(self) -> dict[str, Any]:
        import torch
        import transformers

        return {
            "model_class": type(self.model).__name__,
            "device": self.device,
            "dtype": self.dtype,
            "frame_sampling": "trainer/video.py",
            "max_pixels_used": self._sampling.max_pixels,
            "decoding": "greedy",
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        }

    def generate(self, items: Sequence[EvalItem]) -> Iterator[RunnerOutput]:
        for item in items:
            try:
                yield self._one(item)
            except Exception as e:  # one bad clip must not end the run; it is reported
                yield RunnerOutput(item.key, "", error=f"{type(e).__name__}: {e}")

    def _one(self, item: EvalItem) -> RunnerOutput:
        import torch

        from vlm_autodrive.trainer.video import sample_video

        if item.video is None:  # blind mode: the question without the video
            text = self.processor.apply_chat_template(
                item.messages(None), tokenize=False, add_generation_prompt=True
            )
            inputs = self.processor(text=[text], return_tensors="pt").to(self.device)
        else:
            clip = sample_video(item.video, self._sampling)
            text = self.processor.apply_chat_template(
                item.messages({"type": "video"}), tokenize=False, add_generation_prompt=True
            )
            inputs = self.processor(
                text=[text],
                videos=[clip.frames],
                video_metadata=[clip.metadata],
                do_sample_frames=False,  # sampled above at --fps, as the training collator does
                do_resize=False,  # and resized to the pixel budget in multiples of 28
                return_tensors="pt",
            ).to(self.device)
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=item.max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
            )
        new = out[0, inputs["input_ids"].shape[1] :].tolist()
        stopped = bool(new) and new[-1] in self._eos
        finish = "stop" if stopped or len(new) < item.max_new_tokens else "length"
        answer = self.processor.decode(new, skip_special_tokens=True)
        return RunnerOutput(item.key, answer.strip(), finish_reason=finish)

    def close(self) -> None:
        # Drop the references so a long-lived process can load another model.
        self.model = None
        self.processor = None
