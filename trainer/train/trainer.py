"""`autodrive train`: a thin wrapper around TRL's `SFTTrainer` for video VLMs.

In: a training recipe (trainer/train/config.py). Out, in `output_dir`: checkpoints
(`checkpoint-N/`, Hugging Face format; under ZeRO-3 with 16-bit weights gathered on
save), the final model and processor, and `train_summary.json`.

What the wrapper adds to TRL, in the order it runs (everything that can fail does so
before the model is loaded):

1. the dataset: local folder or Hub snapshot pinned to a revision; config, split and
   every clip path checked (trainer/train/data.py);
2. the processor, the chat template with `{% generation %}` markers (the model's own, or
   TRL's training variant of it), and one row encoded for real: its length plus the
   worst-case video (`max_frames` at `max_pixels`) must fit `max_length`, else a clear
   error names the knobs;
3. `SFTConfig` from the recipe's `sft:` fields plus what the wrapper owns (assistant-only
   loss, no dataset preparation, raw columns kept, gradient accumulation derived from
   `global_batch_size` and the world size);
4. the model, then `SFTTrainer` with the video collator (trainer/train/collator.py), resuming
   from the last checkpoint with `resume`; at the end, the counts of skipped rows.

Runs as one process, or one per GPU under `accelerate launch` (DeepSpeed ZeRO-3 from
the recipe's JSON). Heavy imports live inside the functions.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vlm_autodrive.trainer.train.collator import VideoSFTCollator
from vlm_autodrive.trainer.train.config import TrainRecipe
from vlm_autodrive.trainer.train.data import check_rows, load_rows, resolve_dataset
from vlm_autodrive.trainer.train.run_stamp import check_folder, run_key, write_stamp
from vlm_autodrive.trainer.video import VideoSettings, vision_tokens_upper_bound

SUMMARY = "train_summary.json"
PRIME_ROWS = 16  # rows tried for the known-good fallback sample before giving up


@dataclass
class TrainResult:
    """What a run did: where it wrote, how far it got, what it skipped."""

    output_dir: str
    global_step: int
    train_loss: float | None
    rows: int
    clips: int
    resumed_from: str | None
    skipped_decode: int = 0
    skipped_too_long: int = 0
    versions: dict[str, str] = field(default_factory=dict)


def train(
    recipe: TrainRecipe,
    *,
    output_dir: str | None = None,
    max_steps: int | None = None,
    resume: bool = False,
    force: bool = False,
) -> TrainResult:
    """Run the recipe. `output_dir`/`max_steps` override the recipe; `resume` continues
    from the last `checkpoint-N` in the output folder (a fresh start when there is none).
    A folder that finished with the same recipe, data and steps is left as it is (the
    stored summary is returned); one trained from other inputs is refused unless `force`
    (run_stamp.py). Without `resume`, an output folder holding checkpoints is refused
    rather than mixed with. Raises ValueError for bad input, with the recipe key to change."""
    from transformers import AutoConfig
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(output_dir or recipe.output_dir)
    root, files = resolve_dataset(recipe.dataset)
    recipe_json = recipe.model_dump(mode="json")
    key = run_key(recipe_json, files, max_steps)
    todo = check_folder(out, key, recipe_json, force)
    if todo == "done" and (out / SUMMARY).is_file():
        _say(f"{out}: finished with this recipe and data, nothing to do")
        return TrainResult(**json.loads((out / SUMMARY).read_text()))
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if last and not resume:
        raise ValueError(
            f"{out} already holds checkpoints (last: {Path(last).name}); pass --resume to "
            "continue from it, or choose another --output-dir"
        )

    rows = load_rows(files)
    clips = check_rows(rows, root)
    _say(
        f"dataset: {root} [{recipe.dataset.config}/{recipe.dataset.split}]: "
        f"{len(rows)} rows, {clips} clips, all found"
    )

    config = AutoConfig.from_pretrained(recipe.model.ref, revision=recipe.model.revision)
    max_length = recipe.sft.get("max_length") or config.get_text_config().max_position_embeddings
    processor, collator = _prepare_collator(recipe, root, int(max_length))
    _check_budget(recipe, collator, rows)

    if recipe.deepspeed:
        _single_process_group()
    args = _sft_config(recipe, out, int(max_length), max_steps)
    model = _load_model(recipe)
    from vlm_autodrive.trainer.train.video_trainer import VideoSFTTrainer  # imports TRL

    trainer = VideoSFTTrainer(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=rows,
        processing_class=processor,
    )
    resumed = last if resume else None
    note = f" (resuming {resumed})" if resumed else " (no checkpoint yet)" if resume else ""
    _say(f"training {recipe.model.ref} -> {out}{note}")
    if trainer.is_world_process_zero():
        write_stamp(out, key, recipe_json, finished=False)  # every check passed: it starts
    result = trainer.train(resume_from_checkpoint=resumed)
    trainer.save_model(str(out))  # under ZeRO-3: 16-bit weights gathered from the shards
    write_model_card(trainer, recipe, out)
    summary = _finish(trainer, result, out, len(rows), clips, resumed)
    if trainer.is_world_process_zero():
        write_stamp(out, key, recipe_json, finished=True)
    return summary


def run_result(
    result, out: Path, rows: int, clips: int, resumed: str | None, decode=0, too_long=0
) -> TrainResult:
    """The `TrainResult` of a finished `Trainer.train()` (SFT and GRPO alike)."""
    import torch
    import transformers
    import trl

    return TrainResult(
        output_dir=str(out),
        global_step=int(result.global_step),
        train_loss=float(result.training_loss) if result.training_loss is not None else None,
        rows=rows,
        clips=clips,
        resumed_from=resumed,
        skipped_decode=decode,
        skipped_too_long=too_long,
        versions={
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
        },
    )


def model_card_args(recipe: TrainRecipe, out: Path) -> dict[str, str]:
    """What the model card (OUT/README.md) names: `base_model` (the Hub id fine-tuned,
    or a local model folder's name), `model_name` (the output folder's name) and
    `dataset_name` (the Hub dataset repo, or the local dataset folder's name)."""
    model = recipe.model
    dataset = recipe.dataset
    return {
        "base_model": model.id or Path(str(model.path)).resolve().name,
        "model_name": Path(out).resolve().name,
        "dataset_name": dataset.repo or Path(str(dataset.path)).resolve().name,
    }


def write_model_card(trainer, recipe: TrainRecipe, out: Path) -> None:
    """Rewrite OUT/README.md with TRL's card naming the base model and the dataset.

    TRL's card reads the base model from the model's config, which names the folder
    it was loaded from: a local folder is left out ("fine-tuned version of [None]"),
    and the dataset is never named. Its `create_model_card` is called with the model
    name and dataset, and the base model set on the config for that call."""
    if not trainer.is_world_process_zero():
        return
    args = model_card_args(recipe, out)
    config = trainer.model.config
    loaded_from = config.name_or_path
    config.name_or_path = args["base_model"]
    try:
        trainer.create_model_card(model_name=args["model_name"], dataset_name=args["dataset_name"])
    finally:
        config.name_or_path = loaded_from


def _say(message: str) -> None:
    """Print once per job, not once per process."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(message, flush=True)


def _single_process_group() -> None:
    """DeepSpeed always runs in a process group; a plain `autodrive train` (no launcher)
    gets a group of one on this machine, as `accelerate launch --num_processes 1` would
    give it. Under a launcher (WORLD_SIZE set) nothing changes."""
    import socket

    if "WORLD_SIZE" in os.environ:
        return
    with socket.socket() as s:  # a free port for the group's rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    os.environ.update(env)


def _prepare_collator(recipe: TrainRecipe, root: Path, max_length: int):
    """The processor and a collator rendering with a template that has generation marks."""
    from transformers import AutoProcessor
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    processor = AutoProcessor.from_pretrained(recipe.model.ref, revision=recipe.model.revision)
    template_path = recipe.sft.get("chat_template_path")
    if template_path and str(template_path).endswith((".jinja", ".j2")):
        processor.chat_template = Path(template_path).read_text()  # as SFTTrainer will
    template = None
    if not has_generation_markers(processor.chat_template):
        try:
            template = get_training_chat_template(processor)
        except ValueError as e:
            raise ValueError(
                f"model {recipe.model.ref}: {e} Assistant-only loss needs one: set "
                "sft.chat_template_path to a .jinja copy of the model's template with "
                "{% generation %}...{% endgeneration %} around assistant turns."
            ) from None
    vp = processor.video_processor
    settings = VideoSettings(
        fps=recipe.video.fps,
        max_frames=recipe.video.max_frames,
        max_pixels=recipe.video.max_pixels,
        factor=vp.patch_size * vp.merge_size,
        frame_multiple=vp.temporal_patch_size,
    )
    return processor, VideoSFTCollator(processor, root, settings, max_length, template)


def _check_budget(recipe: TrainRecipe, collator: VideoSFTCollator, rows) -> None:
    """Encode a real row (it becomes the collator's fallback) and check that its text plus
    the worst-case video fit `max_length`; raise ValueError naming the knobs if not."""
    collator.prime(rows.select(range(min(PRIME_ROWS, len(rows)))))
    vp = collator.processor.video_processor
    worst = vision_tokens_upper_bound(
        collator.settings, vp.patch_size, vp.merge_size, vp.temporal_patch_size
    )
    ids = collator.fallback["input_ids"][0]
    video_id = collator.processor.video_token_id
    text = int((ids != video_id).sum())
    v = recipe.video
    if worst + text > collator.max_length:
        raise ValueError(
            f"frame budget: a clip can cost up to {worst} vision tokens (video.max_frames "
            f"{v.max_frames} at video.max_pixels {v.max_pixels}), plus ~{text} text tokens, "
            f"more than max_length {collator.max_length}. Lower video.max_frames, video.fps or "
            "video.max_pixels, or raise sft.max_length (memory permitting)."
        )
    _say(
        f"video: {v.fps:g} fps, at most {v.max_frames} frames of at most {v.max_pixels} px: "
        f"<= {worst} vision tokens per clip; max_length {collator.max_length}"
    )


def _sft_config(recipe: TrainRecipe, out: Path, max_length: int, max_steps: int | None):
    """SFTConfig: the recipe's fields, then the ones the wrapper owns."""
    from trl import SFTConfig

    from vlm_autodrive.resources import resolve_recipe_path

    fields = dict(recipe.sft)
    fields["gradient_accumulation_steps"] = recipe.gradient_accumulation(
        int(os.environ.get("WORLD_SIZE", "1"))
    )
    if max_steps is not None:
        fields["max_steps"] = max_steps
    if recipe.deepspeed:
        fields["deepspeed"] = str(resolve_recipe_path(recipe.deepspeed))
    fields.update(
        output_dir=str(out),
        max_length=max_length,
        assistant_only_loss=True,  # TRL checks the template and that <|im_end|> is trained
        remove_unused_columns=False,  # the collator reads `messages`, not input_ids
        dataset_kwargs={"skip_prepare_dataset": True},  # video is encoded per batch
    )
    try:
        return SFTConfig(**fields)
    except (TypeError, ValueError) as e:
        raise ValueError(f"sft: {e}") from None


def _load_model(recipe: TrainRecipe):
    """The model, after SFTConfig: with ZeRO-3 configured, transformers then loads it
    straight into partitions instead of whole on every rank."""
    import torch
    from transformers import AutoModelForImageTextToText

    name = recipe.model.dtype
    model = AutoModelForImageTextToText.from_pretrained(
        recipe.model.ref,
        revision=recipe.model.revision,
        dtype=name if name == "auto" else getattr(torch, name),
        attn_implementation=recipe.model.attn_implementation,
    )
    # transformers' ZeRO-3 loader keeps its whole key-renaming table, used or not, and on
    # save an unused rule still applies: Qwen2.5-VL was saved as `model.model.layers.*`,
    # which vLLM cannot load. Keep the rules that matched, as the plain loader does.
    conversions = getattr(model, "_weight_conversions", None)
    if conversions:
        model._weight_conversions = [c for c in conversions if c.was_used()]
    return model


def _finish(trainer, result, out: Path, rows: int, clips: int, resumed: str | None) -> TrainResult:
    """Sum the skip counts over ranks, write the summary, report."""

    skipped = trainer.accelerator.reduce(trainer.skipped.to(trainer.accelerator.device), "sum")
    decode, too_long = (int(x) for x in skipped.cpu())
    summary = run_result(result, out, rows, clips, resumed, decode, too_long)
    if trainer.is_world_process_zero():
        (out / SUMMARY).write_text(json.dumps(asdict(summary), indent=2) + "\n")
        if decode or too_long:
            print(
                f"skipped in this run: {decode} rows whose clip failed to decode, "
                f"{too_long} rows longer than max_length (see the warnings above)"
            )
    return summary
