"""Training throughput and peak GPU memory: our wrapper against TRL's own approach.

    .venv-train/bin/python benchmarks/bench_train.py [--shape 7b] [--frames 180]
        [--max-pixels 81920] [--steps 10] [--deepspeed recipes/deepspeed/zero3.json]

Both runs train the same model on the same rows and the same decoded frames (our PyAV
sampler: `--frames` frames of at most `--max-pixels` each from 6 s, 30 fps clips), with
the same SFTConfig (bf16, activation checkpointing, batch 1, AdamW), for `--warmup`
untimed steps then `--steps` timed ones, each run in its own process:

- `ours`: `autodrive train`'s path (trainer/train/trainer.py): VideoSFTCollator (per-row encoding,
  assistant-only labels from the template's generation marks, skip accounting) and the
  SFTTrainer subclass;
- `trl`: plain `trl.SFTTrainer` with the collate function of TRL's video SFT example
  (render the template, one batched processor call, labels = input ids with padding and
  vision tokens masked: loss on the whole text).

It prints samples/s and peak GPU memory per run and their ratio (ours / trl), and writes
them to build/bench/train.json. `--shape 7b` builds a randomly initialised model of
Qwen2.5-VL-7B's shape (Cosmos-Reason1-7B's; no weights can be downloaded) in build/models;
the default is the tiny test model. On a machine without a GPU it says so and exits 0
(`--cpu-smoke` runs the tiny model two steps on the CPU, to check the code path).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "build" / "bench" / "train.json"
MODELS = REPO / "build" / "models"
QUESTION = (
    "What kind of driving event happens in this dashcam video?\n"
    "A. Collision\nB. Near-Collision\nC. Normal Driving"
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=["tiny", "7b"], default="tiny")
    p.add_argument(
        "--text-layers",
        type=int,
        default=28,
        help="7b shape: LLM layers (28 = the full model; 8 fits one 80 GB GPU without offload)",
    )
    p.add_argument("--frames", type=int, default=180, help="frames per clip (max_frames)")
    p.add_argument("--max-pixels", type=int, default=81920, help="per-frame pixel budget")
    p.add_argument("--steps", type=int, default=10, help="timed optimizer steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--clips", type=int, default=8, help="distinct synthetic clips")
    p.add_argument("--size", default="1280x720", help="clip frame size WxH")
    p.add_argument("--deepspeed", help="DeepSpeed JSON, e.g. recipes/deepspeed/zero3.json")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny model, 2 steps, on the CPU")
    p.add_argument("--run", choices=["ours", "trl"], help=argparse.SUPPRESS)  # child process
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    import torch

    if not torch.cuda.is_available() and not args.cpu_smoke:
        print("bench_train: needs a CUDA GPU; none here, nothing measured.")
        return 0
    if args.cpu_smoke:
        args.shape, args.steps, args.warmup, args.frames, args.max_pixels = "tiny", 2, 0, 8, 12544
        args.clips, args.size, args.deepspeed = 2, "320x180", None
    if args.run:
        return _child(args)

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        _make_clips(work, args.clips, args.size)
        model = _model(args.shape, args.text_layers)
        results = {}
        for run in ("trl", "ours"):
            cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])]
            cmd += ["--run", run, "--work", str(work)]
            env = dict(os.environ, MODEL_DIR=str(model))
            if args.deepspeed:  # one process with DeepSpeed still needs a process group
                env.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
                env.setdefault("MASTER_PORT", "29517")
            subprocess.run(cmd, check=True, env=env)
            results[run] = json.loads((work / f"{run}.json").read_text())
    ratio = {
        "samples_per_s": results["ours"]["samples_per_s"] / results["trl"]["samples_per_s"],
        "peak_gb": (results["ours"]["peak_gb"] / results["trl"]["peak_gb"])
        if results["trl"]["peak_gb"]
        else None,
    }
    report = {"settings": {k: v for k, v in vars(args).items() if k not in ("run", "work")},
              "device": _device(), "runs": results, "ratio_ours_over_trl": ratio}  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    shape = f"7b-shape ({args.text_layers} LLM layers)" if args.shape == "7b" else "tiny"
    print(f"\n{report['device']}; {shape} model, {args.frames} frames <= {args.max_pixels} px")
    print(f"{'run':<6} {'samples/s':>10} {'peak GB':>8}")
    for run, r in results.items():
        print(f"{run:<6} {r['samples_per_s']:>10.3f} {r['peak_gb']:>8.2f}")
    peak = f"{ratio['peak_gb']:.2f}" if ratio["peak_gb"] is not None else "n/a"
    print(f"ours/trl: samples/s x{ratio['samples_per_s']:.2f}, peak memory x{peak}  ({OUT})")
    return 0


def _device() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def _make_clips(work: Path, n: int, size: str) -> None:
    """n synthetic 6 s, 30 fps clips and a mixture of 64 rows over them, in our format."""
    from vlm_autodrive.builders.synthetic.sample import generate_sample

    width, height = (int(x) for x in size.split("x"))
    generate_sample(work, n, duration=6.0, width=width, height=height, fps=30.0)
    clips = sorted(p.relative_to(work).as_posix() for p in (work / "videos").glob("*.mp4"))
    rows = []
    for i in range(64):
        clip = clips[i % len(clips)]
        answer = "<think>\nThe lead car brakes; no contact.\n</think>\n\n<answer>\nB\n</answer>"
        messages = [
            {"role": "user", "content": [{"type": "video", "text": None, "video": clip},
                                         {"type": "text", "text": QUESTION, "video": None}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer, "video": None}]},
        ]  # fmt: skip
        rows.append({"id": f"r{i}", "video": clip, "messages": messages})
    import pyarrow as pa

    from vlm_autodrive.builders.dataset.folder import write_data_file

    write_data_file(work, "bench", "train", pa.Table.from_pylist(rows))


def _model(shape: str, text_layers: int) -> Path:
    """The tiny test model, or a random model of Qwen2.5-VL-7B's shape (built once).
    Full fine-tuning costs ~16 bytes a parameter (bf16 weights and grads, fp32 Adam), so
    the whole 7B (~120 GB) needs several GPUs under ZeRO-3 or offloading; `text_layers`
    shrinks the LLM for one GPU, keeping the full vision tower and sequence lengths."""
    from vlm_autodrive.builders.synthetic.tiny_vlm import build_tiny_qwen2_5_vl

    tiny = build_tiny_qwen2_5_vl(MODELS / "tiny-qwen2_5_vl")
    if shape == "tiny":
        return tiny
    out = MODELS / f"random-qwen2_5_vl-7b-{text_layers}l"
    if (out / "model.safetensors.index.json").exists() or (out / "model.safetensors").exists():
        return out
    import torch
    from transformers import AutoConfig, AutoProcessor, Qwen2_5_VLForConditionalGeneration

    config = AutoConfig.from_pretrained(tiny)
    # Qwen2.5-VL-7B-Instruct's published sizes (Cosmos-Reason1-7B shares them).
    config.text_config.update(dict(
        vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=text_layers,
        num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=128000,
        layer_types=["full_attention"] * text_layers,
    ))  # fmt: skip
    config.text_config.rope_parameters["mrope_section"] = [16, 24, 24]
    config.vision_config.update(dict(
        depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
        fullatt_block_indexes=[7, 15, 23, 31],
    ))  # fmt: skip
    with torch.device("cuda"):
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16)
    model.save_pretrained(out)
    AutoProcessor.from_pretrained(tiny).save_pretrained(out)
    return out


def _recipe(args, work: Path):
    from vlm_autodrive.trainer.train.config import TrainRecipe

    bf16 = not args.cpu_smoke
    return TrainRecipe.model_validate({
        "model": {"path": os.environ["MODEL_DIR"], "dtype": "bfloat16" if bf16 else "float32"},
        "dataset": {"path": str(work), "config": "bench"},
        "video": {"fps": 30, "max_frames": args.frames, "max_pixels": args.max_pixels},
        "sft": {
            "per_device_train_batch_size": 1, "max_steps": args.warmup + args.steps,
            "learning_rate": 1e-5, "weight_decay": 0.01, "bf16": bf16, "use_cpu": args.cpu_smoke,
            "activation_checkpointing": True,
            "activation_checkpointing_kwargs": {"use_reentrant": False},
            "max_length": 32768, "save_strategy": "no", "report_to": "none",
            "logging_steps": 1, "dataloader_num_workers": 0 if args.cpu_smoke else 4,
            "disable_tqdm": True, "seed": 0,
        },
        "deepspeed": args.deepspeed,
        "output_dir": str(work / f"out-{args.run}"),
    })  # fmt: skip


def _child(args) -> int:
    """One measured run in this process; writes WORK/<run>.json."""
    import torch
    from transformers import TrainerCallback

    from vlm_autodrive.trainer.train import trainer as sft
    from vlm_autodrive.trainer.train.data import load_rows, resolve_dataset

    recipe = _recipe(args, args.work)
    root, files = resolve_dataset(recipe.dataset)
    rows = load_rows(files)
    processor, collator = sft._prepare_collator(recipe, root, 32768)
    sft._check_budget(recipe, collator, rows)
    config = sft._sft_config(recipe, Path(recipe.output_dir), 32768, None)
    model = sft._load_model(recipe)
    if args.run == "ours":
        trainer_cls, collate = sft._trainer_class(), collator
    else:
        from trl import SFTTrainer

        trainer_cls, collate = SFTTrainer, _trl_example_collate(processor, collator)

    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *_, **__):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter())

    trainer = trainer_cls(model=model, args=config, data_collator=collate, train_dataset=rows,
                          processing_class=processor, callbacks=[Clock()])  # fmt: skip
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trainer.train()
    timed = times[args.warmup - 1 :] if args.warmup else [start, *times]
    elapsed = timed[-1] - timed[0]
    samples = (len(timed) - 1) * config.per_device_train_batch_size
    samples *= config.gradient_accumulation_steps
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    result = {"samples_per_s": samples / elapsed, "peak_gb": peak, "steps": len(timed) - 1}
    (args.work / f"{args.run}.json").write_text(json.dumps(result))
    return 0


def _trl_example_collate(processor, ours):
    """The collate function of TRL's video SFT example, on the same decoded frames."""
    from vlm_autodrive.trainer.video import sample_video

    vision_ids = [processor.video_token_id, processor.image_token_id]

    def collate(rows):
        texts, videos, metadata = [], [], []
        for row in rows:
            messages = [
                {"role": m["role"], "content": [{k: v for k, v in part.items() if v is not None}
                                                for part in m["content"]]}
                for m in row["messages"]
            ]  # fmt: skip
            texts.append(processor.apply_chat_template(messages, tokenize=False))
            clip = sample_video(ours.root / row["video"], ours.settings)
            videos.append(clip.frames)
            metadata.append(clip.metadata)
        batch = processor(text=texts, videos=videos, video_metadata=metadata, padding=True,
                          return_tensors="pt", do_sample_frames=False, do_resize=False)  # fmt: skip
        labels = batch["input_ids"].clone()
        labels[labels == processor.tokenizer.pad_token_id] = -100
        for token in vision_ids:
            labels[labels == token] = -100
        batch["labels"] = labels
        return batch

    return collate


if __name__ == "__main__":
    sys.exit(main())
