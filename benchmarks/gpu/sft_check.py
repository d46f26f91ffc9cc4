"""The SFT part's steps, each run as its own process by run_gpu_check.py (in the check's
environment: torch, transformers, TRL, DeepSpeed, this project).

    python benchmarks/gpu/sft_check.py model --shape 3b --out DIR
    python benchmarks/gpu/sft_check.py tokens RECIPE
    python benchmarks/gpu/sft_check.py ours RECIPE --output-dir DIR
    python benchmarks/gpu/sft_check.py trl RECIPE --output-dir DIR

- `model`: a randomly initialised model, saved in Hugging Face format (no weights can be
  downloaded): `tiny` is the tests' tiny Qwen2.5-VL; `3b` has Qwen2.5-VL-3B-Instruct's
  published shape (36 LLM layers of width 2048, the 32-block vision tower), about 3.75B
  parameters, with the tiny model's tokenizer and processor.
- `tokens`: the mean vision and text tokens of a training sample, from the very collator
  training uses (the first rows of the recipe's mixture, encoded once).
- `ours`: `autodrive train RECIPE` itself: the console script's own function,
  `vlm_autodrive.cli.main(["train", ...])`, unchanged; afterwards the peak device memory.
- `trl`: the baseline: plain `trl.SFTTrainer` with the same model, rows, collator and
  SFTConfig (the wrapper's own helpers build them from the same recipe), without the
  wrapper's trainer subclass and checks; afterwards the peak device memory.

Each prints one `GPU_CHECK_RESULT {json}` line last (benchmarks/gpu/common.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_result

# Qwen2.5-VL-3B-Instruct's published sizes (its config.json): text, then vision.
SHAPE_3B_TEXT = dict(
    vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
    num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=128000,
    tie_word_embeddings=True,
)  # fmt: skip
SHAPE_3B_VISION = dict(
    depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048,
    fullatt_block_indexes=[7, 15, 23, 31], window_size=112, patch_size=14,
    spatial_merge_size=2, temporal_patch_size=2,
)  # fmt: skip


def build_model(shape: str, out: Path) -> dict:
    """Write the model folder; return what was built (class, parameters, shape)."""
    import torch

    from vlm_autodrive.builders.synthetic.tiny_vlm import build_tiny_qwen2_5_vl

    tiny = build_tiny_qwen2_5_vl(out.parent / "tiny-qwen2_5_vl")
    if shape == "tiny":
        return {"path": str(tiny), "shape": "tiny", "parameters": _count(tiny)}
    from transformers import AutoConfig, AutoProcessor, Qwen2_5_VLForConditionalGeneration

    config = AutoConfig.from_pretrained(tiny)
    layers = SHAPE_3B_TEXT["num_hidden_layers"]
    config.text_config.update(dict(SHAPE_3B_TEXT, layer_types=["full_attention"] * layers))
    config.text_config.rope_parameters["mrope_section"] = [16, 24, 24]
    config.tie_word_embeddings = True
    config.vision_config.update(SHAPE_3B_VISION)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out)
    AutoProcessor.from_pretrained(tiny).save_pretrained(out)
    return {"path": str(out), "shape": "Qwen2.5-VL-3B-Instruct", "parameters": params}


def _count(folder: Path) -> int:
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def _prepared(recipe_path: Path):
    """(recipe, rows, processor, collator, max_length) as `autodrive train` makes them."""
    from transformers import AutoConfig

    from vlm_autodrive.trainer.train import trainer as sft
    from vlm_autodrive.trainer.train.config import load_train_recipe
    from vlm_autodrive.trainer.train.data import load_rows, resolve_dataset

    recipe = load_train_recipe(recipe_path)
    root, files = resolve_dataset(recipe.dataset)
    rows = load_rows(files)
    config = AutoConfig.from_pretrained(recipe.model.ref)
    max_length = int(
        recipe.sft.get("max_length") or config.get_text_config().max_position_embeddings
    )
    processor, collator = sft._prepare_collator(recipe, root, max_length)
    return recipe, rows, processor, collator, max_length


def count_tokens(recipe_path: Path, rows_to_encode: int = 8) -> dict:
    """Mean vision (video placeholder), text and trained (assistant, label != -100)
    tokens per sample over the first rows."""
    import transformers

    _, rows, processor, collator, _ = _prepared(recipe_path)
    vision = text = trained = 0
    n = min(rows_to_encode, len(rows))
    for row in rows.select(range(n)):
        item = collator.encode(row)
        ids = item["input_ids"][0]
        v = int((ids == processor.video_token_id).sum())
        vision, text = vision + v, text + int(ids.numel()) - v
        trained += int((item["labels"][0] != -100).sum())
    return {"rows_encoded": n, "vision_tokens": vision / n, "text_tokens": text / n,
            "trained_tokens": trained / n, "transformers": transformers.__version__}  # fmt: skip


def run_ours(recipe_path: Path, output_dir: Path) -> dict:
    """`autodrive train RECIPE --output-dir DIR`, then the peak memory."""
    from vlm_autodrive.cli import main

    code = main(["train", str(recipe_path), "--output-dir", str(output_dir)])
    if code:
        raise SystemExit(code)
    return _peak()


def run_trl(recipe_path: Path, output_dir: Path) -> dict:
    """Plain `trl.SFTTrainer` on what `autodrive train` would build from the recipe."""
    from trl import SFTTrainer

    from vlm_autodrive.trainer.train import trainer as sft
    from vlm_autodrive.trainer.train.collator import SKIPPED

    recipe, rows, processor, collator, max_length = _prepared(recipe_path)
    if recipe.deepspeed:
        sft._single_process_group()  # as `autodrive train` does for a one-process run
    args = sft._sft_config(recipe, output_dir, max_length, None)
    model = sft._load_model(recipe)

    def collate(batch):
        out = collator(batch)
        out.pop(SKIPPED)  # the wrapper's skip counts; a plain model call would refuse them
        return out

    trainer = SFTTrainer(
        model=model,
        args=args,
        data_collator=collate,
        train_dataset=rows,
        processing_class=processor,
    )
    trainer.train()
    return _peak()


def _peak() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"peak_allocated_gib": None, "peak_reserved_gib": None}
    return {
        "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="step", required=True)
    m = sub.add_parser("model")
    m.add_argument("--shape", choices=["tiny", "3b"], required=True)
    m.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("tokens")
    t.add_argument("recipe", type=Path)
    for name in ("ours", "trl"):
        r = sub.add_parser(name)
        r.add_argument("recipe", type=Path)
        r.add_argument("--output-dir", type=Path, required=True)
    args = p.parse_args(argv)
    if args.step == "model":
        print_result(build_model(args.shape, args.out))
    elif args.step == "tokens":
        print_result(count_tokens(args.recipe))
    elif args.step == "ours":
        print_result(run_ours(args.recipe, args.output_dir))
    else:
        print_result(run_trl(args.recipe, args.output_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
