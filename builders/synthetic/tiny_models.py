"""Tiny randomly initialised models, built locally, for tests and the embedded demo.

No weights can be downloaded here, so the demo and the engine tests run vLLM on a
Llama-style causal LM with random weights: its text is noise, but it goes through the very
same code paths (chat template, tokenizer, sampling, `n`, seeds, structured outputs) as
Llama-3.1-70B-Instruct or an R1 distill would.

Needs torch, transformers and tokenizers (the `.venv-vllm` environment has them); they
are imported inside the functions so importing this module stays cheap.

    python -m vlm_autodrive.builders.synthetic.tiny_models --out build/models/tiny-llama
    python -m vlm_autodrive.builders.synthetic.tiny_models --kind vlm --out DIR

Both builders (this text model and `tiny_vlm.py`'s Qwen2.5-VL) share the tokenizer
trainer and the stamped, atomic folder build (`core/files.py`), and this one command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.files import build_stamped_folder

STAMP = "tiny_model.json"  # written last: its presence means the folder is complete

BOS, EOS, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
SPECIAL_TOKENS = [BOS, EOS, "<|start_header_id|>", "<|end_header_id|>", EOT]
# Added (not special) so they survive `skip_special_tokens`, as in the R1 distills.
THINK_TOKENS = ["<think>", "</think>"]

# Llama-3 layout. Content may be a string or a list of OpenAI parts (text parts joined).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['content'] is string %}{% set content = message['content'] %}"
    "{% else %}{% set content = message['content'] | selectattr('type', 'equalto', 'text')"
    " | map(attribute='text') | join('\\n') %}{% endif %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ content | trim }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

# A few strings in the domain, so the BPE merges look like words of it.
CORPUS = [
    "The ego vehicle drives on a wet urban road at night; a white sedan cuts in from the "
    "left lane and brakes hard. Collision, Near-Collision or Normal Driving?",
    "A pedestrian crosses in front of the truck at the intersection under clear daylight.",
    '{"questions": [{"question": "What is the weather?", "options": ["A. Clear", '
    '"B. Rain", "C. Snow"], "answer": "B", "dimension": "weather"}]}',
    "<think>\nThe other vehicle approaches fast, but no contact happens.\n</think>\n\n"
    "<answer>\nB\n</answer>",
    "Answer with the letter of the correct option: A, B or C. Explain your reasoning step "
    "by step, then give the final answer.",
]


def tiny_params(
    seed: int = 0,
    hidden_size: int = 128,
    num_layers: int = 2,
    head_dim: int = 64,
    vocab_size: int = 512,
    max_position_embeddings: int = 8192,
) -> dict[str, Any]:
    """The parameters a tiny model is built from; equal params mean an equal folder."""
    if head_dim != 64:
        # vLLM's CPU attention rejects small head sizes (16 fails, 64 works).
        raise ValueError("head_dim must be 64 for vLLM's CPU attention")
    return {
        "kind": "llama",
        "version": 1,  # bump when the builder changes what it writes
        "seed": seed,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "head_dim": head_dim,
        "vocab_size": vocab_size,
        "max_position_embeddings": max_position_embeddings,
    }


def build_tiny_text_model(out_dir: Path, seed: int = 0, **overrides: Any) -> Path:
    """Build (or reuse) a tiny random Llama-style chat model in `out_dir`; return `out_dir`.

    The folder holds `config.json`, `generation_config.json`, `model.safetensors`,
    `tokenizer.json`, `tokenizer_config.json` (with the chat template) and a stamp file.
    A folder whose stamp records the same parameters is reused untouched. The model is
    written to a temporary sibling and renamed into place, so a killed build leaves no
    half-written model behind.
    """
    params = tiny_params(seed=seed, **overrides)
    return build_stamped_folder(Path(out_dir), STAMP, params, lambda tmp: _write_model(tmp, params))


def train_bpe_tokenizer(
    corpus: list[str],
    vocab_size: int,
    special_tokens: list[str],
    added_tokens: list[str] = (),
    post_processor: bool = False,
):
    """A byte-level BPE tokenizer trained on `corpus` (every input encodes: no unknown
    token), as Llama-3's and Qwen's are; `added_tokens` are added as plain tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    if post_processor:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus * 4, trainer=trainer)
    if added_tokens:
        tok.add_tokens(list(added_tokens))
    return tok


def _write_model(out: Path, params: dict[str, Any]) -> None:
    import torch
    from transformers import (
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    torch.manual_seed(params["seed"])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_bpe_tokenizer(
            CORPUS, params["vocab_size"], SPECIAL_TOKENS, THINK_TOKENS, post_processor=True
        ),
        bos_token=BOS,
        eos_token=EOT,  # a chat turn ends with <|eot_id|>
        pad_token=EOS,
        model_max_length=params["max_position_embeddings"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    # Legacy layout (template inside tokenizer_config.json): every loader reads it.
    tokenizer.save_pretrained(out, save_jinja_files=False)

    ids = tokenizer.convert_tokens_to_ids
    hidden = params["hidden_size"]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=params["num_layers"],
        num_attention_heads=hidden // params["head_dim"],
        num_key_value_heads=hidden // params["head_dim"],
        head_dim=params["head_dim"],
        max_position_embeddings=params["max_position_embeddings"],
        bos_token_id=ids(BOS),
        eos_token_id=[ids(EOT), ids(EOS)],
        pad_token_id=ids(EOS),
        tie_word_embeddings=False,
        dtype="float32",
    )
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(
        bos_token_id=ids(BOS), eos_token_id=[ids(EOT), ids(EOS)], pad_token_id=ids(EOS)
    ).save_pretrained(out)


def main(argv: list[str] | None = None) -> int:
    """`python -m vlm_autodrive.builders.synthetic.tiny_models [--kind text|vlm] --out DIR`:
    builds (or reuses) the tiny model and prints DIR."""
    p = argparse.ArgumentParser(description="Build a tiny random model (tests, demos).")
    p.add_argument("--kind", choices=["text", "vlm"], default="text", help="Llama or Qwen2.5-VL")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.kind == "vlm":
        from vlm_autodrive.builders.synthetic.tiny_vlm import build_tiny_qwen2_5_vl

        print(build_tiny_qwen2_5_vl(args.out, seed=args.seed))
    else:
        print(build_tiny_text_model(args.out, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
