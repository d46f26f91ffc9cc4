"""A tiny randomly initialised Qwen2.5-VL, built locally, for tests on the CPU.

No weights can be downloaded here, so the training and evaluation tests run a
Qwen2.5-VL with random weights: its answers are noise, but it takes the very same code
paths as Cosmos-Reason1-7B (a Qwen2.5-VL fine-tune): processor, video patches, M-RoPE,
chat template, assistant masks, ZeRO-3 saving, vLLM's Qwen2.5-VL loader.

What it is: text model with hidden size 64, one attention head of dim 64 (vLLM's CPU
attention rejects smaller heads), 2 layers; vision tower of 2 blocks, hidden 64, patches
of 14 px merged 2x2 (so frames are multiples of 28 px) and 2 frames per temporal patch;
a byte-level BPE tokenizer trained with `tokenizers` on a few domain strings plus the
Qwen special tokens; a Qwen-layout chat template with `{% generation %}` markers around
assistant turns (so `return_assistant_tokens_mask` works); image and video processors
with small pixel budgets, the video processor with `do_sample_frames` false because our
code (trainer/video.py, or vLLM) samples the frames.

Needs torch, transformers (with torchvision) and tokenizers: the `.venv-train`
environment. Heavy imports live inside the functions.

    python -m vlm_autodrive.builders.synthetic.tiny_models --kind vlm \
        --out build/models/tiny-qwen2_5_vl
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.files import build_stamped_folder
from vlm_autodrive.builders.synthetic.tiny_models import train_bpe_tokenizer

STAMP = "tiny_vlm.json"  # written last: its presence means the folder is complete

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
IMAGE_PAD, VIDEO_PAD = "<|image_pad|>", "<|video_pad|>"
# Qwen2.5-VL's special tokens, in its order, so the layout matches the real tokenizer's.
SPECIAL_TOKENS = [
    ENDOFTEXT,
    IM_START,
    IM_END,
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    VISION_START,
    VISION_END,
    "<|vision_pad|>",
    IMAGE_PAD,
    VIDEO_PAD,
]

# Qwen's layout (`<|im_start|>role\n...<|im_end|>\n`), written here in our own words.
# Parts are told apart by `type` only: a part read back from Arrow carries every field of
# the struct (`text: None` beside `video: ...`), so "'video' in part" would misfire. The
# assistant turn, with its closing <|im_end|>, sits inside {% generation %} so the model
# is trained to stop.
CHAT_TEMPLATE = (
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- else -%}{%- for part in content -%}"
    "{%- if part['type'] == 'video' -%}<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif part['type'] == 'image' -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "<|im_start|>assistant\n"
    "{%- generation -%}{{ render(message['content']) }}<|im_end|>{%- endgeneration -%}\n"
    "{%- else -%}"
    "<|im_start|>{{ message['role'] }}\n{{ render(message['content']) }}<|im_end|>\n"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant\n{%- endif -%}"
)

# A few strings in the domain, so the BPE merges look like words of it.
CORPUS = [
    "You are a driving safety analyst. Watch the dashcam clip and answer the question.",
    "What kind of driving event happens in this dashcam video? Choose one option.\n"
    "A. Near-Collision\nB. Normal Driving\nC. Collision\nReply with the letter.",
    "<think>\nThe white sedan brakes hard in front of the ego vehicle, but no contact "
    "happens.\n</think>\n\n<answer>\nA\n</answer>",
    "The ego vehicle drives on a wet urban road at night; a truck cuts in from the left.",
    "B. Normal Driving",
]


def tiny_vlm_params(seed: int = 0) -> dict[str, Any]:
    """The parameters the tiny model is built from; equal params mean an equal folder."""
    return {
        "kind": "qwen2_5_vl",
        "version": 1,  # bump when the builder changes what it writes
        "seed": seed,
        "text": {"hidden_size": 64, "layers": 2, "heads": 1, "head_dim": 64, "max_len": 32768},
        "vision": {"hidden_size": 64, "depth": 2, "heads": 1, "patch": 14, "merge": 2},
        "bpe_vocab": 600,
        # Per-frame pixel budgets of the processors (multiples of 28 x 28).
        "image_pixels": [28 * 28, 28 * 28 * 64],
        "video_pixels": [28 * 28, 28 * 28 * 64],
    }


def build_tiny_qwen2_5_vl(out_dir: Path, seed: int = 0) -> Path:
    """Build (or reuse) the tiny random Qwen2.5-VL in `out_dir`; return `out_dir`.

    Out: a folder `from_pretrained` (transformers' Auto classes, vLLM) loads offline:
    config, weights (safetensors), generation config, tokenizer, processor configs, chat
    template, and a stamp file. A folder whose stamp records the same parameters is
    reused untouched; a folder that is something else is refused. The model is written
    to a temporary sibling and renamed into place, so a killed build leaves nothing
    half-written behind.
    """
    params = tiny_vlm_params(seed)
    return build_stamped_folder(Path(out_dir), STAMP, params, lambda tmp: _write_model(tmp, params))


def _write_model(out: Path, params: dict[str, Any]) -> None:
    import torch
    from transformers import (
        GenerationConfig,
        PreTrainedTokenizerFast,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    torch.manual_seed(params["seed"])
    text, vision = params["text"], params["vision"]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_bpe_tokenizer(CORPUS, params["bpe_vocab"], SPECIAL_TOKENS),
        eos_token=IM_END,  # a chat turn ends with <|im_end|>
        pad_token=ENDOFTEXT,
        model_max_length=text["max_len"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    lo, hi = params["image_pixels"]
    image_processor = Qwen2VLImageProcessor(
        min_pixels=lo, max_pixels=hi, patch_size=vision["patch"], merge_size=vision["merge"]
    )
    lo, hi = params["video_pixels"]
    video_processor = Qwen2VLVideoProcessor(
        min_pixels=lo,
        max_pixels=hi,
        patch_size=vision["patch"],
        merge_size=vision["merge"],
        do_sample_frames=False,  # frames are sampled by our code (or vLLM's), not here
        cap_pixels_per_frame=False,  # the budget above is the cap; silences a warning
    )
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)

    ids = tokenizer.convert_tokens_to_ids
    head_dim = text["head_dim"]
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": text["hidden_size"],
            "intermediate_size": 2 * text["hidden_size"],
            "num_hidden_layers": text["layers"],
            "num_attention_heads": text["heads"],
            "num_key_value_heads": text["heads"],
            "max_position_embeddings": text["max_len"],
            # M-RoPE splits the rotary half-dim over (time, height, width): sums to 32.
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1000000.0,
                "mrope_section": [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16],
            },
            "bos_token_id": ids(ENDOFTEXT),
            "eos_token_id": ids(IM_END),
            "pad_token_id": ids(ENDOFTEXT),
        },
        vision_config={
            "depth": vision["depth"],
            "hidden_size": vision["hidden_size"],
            "intermediate_size": 2 * vision["hidden_size"],
            "num_heads": vision["heads"],
            "patch_size": vision["patch"],
            "spatial_merge_size": vision["merge"],
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [vision["depth"] - 1],
            "out_hidden_size": text["hidden_size"],
            "tokens_per_second": 2,
        },
        image_token_id=ids(IMAGE_PAD),
        video_token_id=ids(VIDEO_PAD),
        vision_start_token_id=ids(VISION_START),
        vision_end_token_id=ids(VISION_END),
        tie_word_embeddings=False,
    )
    model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32).eval()
    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(
        bos_token_id=ids(ENDOFTEXT),
        eos_token_id=[ids(IM_END), ids(ENDOFTEXT)],
        pad_token_id=ids(ENDOFTEXT),
    ).save_pretrained(out)
