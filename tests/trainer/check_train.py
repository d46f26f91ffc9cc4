"""Internal checks of the trainer that need `.venv-train` (torch, transformers, TRL,
DeepSpeed). Run by tests/trainer/test_train.py as

    .venv-train/bin/python tests/trainer/check_train.py BUILD MODEL WORK

where BUILD holds the `mix-quickstart` config, MODEL is the tiny Qwen2.5-VL and WORK a
scratch folder. Each check prints `ok <name>`; the first failure raises (exit != 0).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fixtures import REPO, mixture_rows, train_recipe, write_mixture  # noqa: E402

from vlm_autodrive.trainer.train.collator import IGNORE, SKIPPED  # noqa: E402
from vlm_autodrive.trainer.train.config import load_train_recipe  # noqa: E402
from vlm_autodrive.trainer.train.data import load_rows, resolve_dataset  # noqa: E402
from vlm_autodrive.trainer.train.trainer import _prepare_collator, train  # noqa: E402
from vlm_autodrive.trainer.video import VideoDecodeError, sample_video  # noqa: E402


def collator_for(recipe_path: Path, max_length: int = 1024):
    recipe = load_train_recipe(recipe_path)
    root, files = resolve_dataset(recipe.dataset)
    processor, collator = _prepare_collator(recipe, root, max_length)
    return recipe, load_rows(files), processor, collator


def assistant_text(row) -> str:
    turn = next(m for m in row["messages"] if m["role"] == "assistant")
    return "".join(p["text"] for p in turn["content"] if p["type"] == "text")


def decodes(collator, row) -> bool:
    try:
        sample_video(collator.root / row["video"], collator.settings)
    except VideoDecodeError:
        return False
    return True


def check_labels(recipe_path: Path) -> None:
    """Labels keep exactly the assistant answer and its <|im_end|>; all else is -100."""
    _, rows, processor, collator = collator_for(recipe_path)
    batch_rows = [r for r in rows if decodes(collator, r)][:4]
    batch = collator(batch_rows)
    tok = processor.tokenizer
    assert batch[SKIPPED].tolist() == [0, 0]
    assert batch["labels"].shape == batch["input_ids"].shape
    assert batch["video_grid_thw"].shape[0] == len(batch_rows)
    for i, row in enumerate(batch_rows):
        ids, labels, attn = batch["input_ids"][i], batch["labels"][i], batch["attention_mask"][i]
        kept = labels != IGNORE
        assert (labels[kept] == ids[kept]).all()
        assert tok.decode(ids[kept]) == assistant_text(row) + "<|im_end|>", tok.decode(ids[kept])
        # the video placeholders, system and user turns and the padding carry no loss
        assert not kept[ids == processor.video_token_id].any()
        assert not kept[attn == 0].any()
        text = tok.decode(ids[attn == 1])
        assert text.startswith("<|im_start|>system\n") and "<|video_pad|>" in text
    # Qwen2.5-VL's time between temporal patches follows our sampling (8 frames over a
    # 6 s clip: the frame cap lowers 2 fps to 1.33), not a default frame rate.
    clip = sample_video(collator.root / batch_rows[0]["video"], collator.settings)
    assert len(clip.frames) == 8
    assert abs(float(batch["second_per_grid_ts"][0]) - 2 / clip.sampled_fps) < 1e-6
    print("ok labels")


def check_skips(recipe_path: Path, work: Path) -> None:
    """A clip that fails to decode is skipped and counted; an all-failed batch is the
    fallback with no loss; a too-long row is skipped and counted."""
    _, rows, _, collator = collator_for(recipe_path)
    collator.prime(rows.select(range(4)))
    good, bad = (dict(r) for r in [r for r in rows if decodes(collator, r)][:2])
    broken = work / "broken.mp4"
    broken.write_bytes(b"not a video" * 100)
    for turn in bad["messages"]:
        for part in turn["content"]:
            if part["type"] == "video":
                part["video"] = str(broken)  # absolute: `root / abs` is `abs`
    batch = collator([good, bad])
    assert batch[SKIPPED].tolist() == [1, 0] and batch["input_ids"].shape[0] == 1
    batch = collator([bad])
    assert batch[SKIPPED].tolist() == [1, 0] and (batch["labels"] == IGNORE).all()
    _, _, _, short = collator_for(recipe_path, max_length=20)
    short.prime(rows.select(range(1)))
    batch = short([good])
    assert batch[SKIPPED].tolist() == [0, 1] and (batch["labels"] == IGNORE).all()
    print("ok skips")


def check_deepspeed() -> None:
    """The bundled ZeRO-3 JSON, its "auto" values filled from the paper's recipe the way
    transformers fills them, passes DeepSpeed's own config parser. One GPU: without a
    process group DeepSpeed's parser takes the world size as 1 (the issue's single-H100
    run: global batch 8 = 1 per step x 8 accumulation steps)."""
    from types import SimpleNamespace

    from deepspeed.runtime.config import DeepSpeedConfig
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig
    from trl import SFTConfig

    world = 1
    recipe = load_train_recipe(REPO / "recipes" / "train" / "cosmos_reason1_7b.yaml")
    sft = dict(recipe.sft, bf16=False)  # bf16 args need a GPU to build; set back below
    args = SFTConfig(
        output_dir=str(REPO / "build" / "unused"),
        gradient_accumulation_steps=recipe.gradient_accumulation(world),
        **sft,
    )
    args.bf16 = True
    hf = HfTrainerDeepSpeedConfig(str(REPO / "recipes" / "deepspeed" / "zero3.json"))
    hf.trainer_config_process(args)
    qwen_7b = SimpleNamespace(config=SimpleNamespace(hidden_size=3584))
    hf.trainer_config_finalize(args, qwen_7b, num_training_steps=1000)
    config = DeepSpeedConfig(hf.config)
    assert config.zero_optimization_stage == 3
    assert config.zero_config.gather_16bit_weights_on_model_save
    assert config.bfloat16_config.enabled
    assert config.train_micro_batch_size_per_gpu == 1
    assert config.gradient_accumulation_steps == 8 and config.train_batch_size == 8
    print("ok deepspeed")


def check_recipe_errors(recipe_path: Path, work: Path) -> None:
    """Bad input fails before training, naming what to fix."""
    import yaml

    data = yaml.safe_load(recipe_path.read_text())

    def fails(change, expected: str) -> None:
        bad = yaml.safe_load(yaml.safe_dump(data))
        change(bad)
        path = work / "bad.yaml"
        path.write_text(yaml.safe_dump(bad))
        try:
            train(load_train_recipe(path), output_dir=str(work / "bad-out"))
        except ValueError as e:
            assert expected in str(e), f"{expected!r} not in {e}"
            return
        raise AssertionError(f"no error for {expected}")

    fails(lambda d: d["sft"].update(learning_rat=1e-4), "sft.learning_rat: not a field of TRL")
    fails(lambda d: d["sft"].update(learning_rat=1e-4), "did you mean learning_rate?")
    fails(lambda d: d["dataset"].update(config="mix-nope"), "no config 'mix-nope'")
    fails(lambda d: d["dataset"].update(split="validation"), "has no split 'validation'")
    fails(lambda d: d["video"].update(max_frames=4000), "frame budget")
    # a clip path that does not resolve: a mixture row pointing at a missing clip
    build = Path(data["dataset"]["path"])
    copy = work / "build-missing-clip"
    shutil.copytree(build / "data", copy / "data")
    shutil.copytree(build / "clips", copy / "clips")
    rows = mixture_rows(build)
    rows[0]["messages"][1]["content"][0]["video"] = "clips/nowhere/gone.mp4"
    write_mixture(copy, rows)
    fails(lambda d: d["dataset"].update(path=str(copy)), "clips/nowhere/gone.mp4")
    print("ok recipe errors")


def check_model(model: Path, output: Path) -> None:
    """The final model and a checkpoint reload with from_pretrained; training moved the
    weights away from the initial ones."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    initial = AutoModelForImageTextToText.from_pretrained(model).state_dict()
    final = AutoModelForImageTextToText.from_pretrained(output).state_dict()
    ckpt = AutoModelForImageTextToText.from_pretrained(output / "checkpoint-2").state_dict()
    AutoProcessor.from_pretrained(output)
    assert initial.keys() == final.keys()
    changed = [k for k in initial if not torch.equal(initial[k], final[k])]
    assert len(changed) > len(initial) // 2, f"only {len(changed)} tensors changed"
    assert any(not torch.equal(ckpt[k], final[k]) for k in final)
    assert all(torch.isfinite(v).all() for v in final.values())
    print("ok model")


def main(argv: list[str]) -> int:
    build, model, work = (Path(a) for a in argv[:3])
    only = argv[3:]
    work.mkdir(parents=True, exist_ok=True)
    recipe = train_recipe(work, model, build, work / "out-check")
    checks = {
        "labels": lambda: check_labels(recipe),
        "skips": lambda: check_skips(recipe, work),
        "deepspeed": check_deepspeed,
        "recipe_errors": lambda: check_recipe_errors(recipe, work),
    }
    if "model" in only:
        check_model(model, Path(only[only.index("model") + 1]))
        return 0
    for name, check in checks.items():
        if not only or name in only:
            check()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
