"""The dry run's cost estimates: prompt tokens, output tokens and GPU-hours of the sends.

- Prompt tokens: counted with the model's own tokenizer when the model is a local folder
  holding a `tokenizer.json` and the `tokenizers` package is installed (it comes with
  vLLM and transformers); the chat template's few tokens per turn are not counted.
  Otherwise estimated at 4 characters a token. Video parts are not counted.
- Output tokens, per request to send: `n` samples times the mean completion tokens of
  the split's cached responses (measured on this build), or times `max_tokens` when the
  cache holds none (an upper bound).
- GPU-hours, with a measured `throughput` of one replica in the model's config: the
  seconds one replica would take (requests / requests_per_s, or output tokens /
  output_tokens_per_s) times the GPUs of a replica, over 3,600.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from vlm_autodrive.builders.generate.backends.base import GenerationRequest, GenerationResponse
from vlm_autodrive.builders.generate.config import ModelConfig

CHARS_PER_TOKEN = 4


def _texts(req: GenerationRequest) -> list[str]:
    out = []
    for m in req.messages:
        c = m["content"]
        out += [c] if isinstance(c, str) else [p.get("text", "") for p in c]
    return out


@lru_cache(maxsize=8)
def _tokenizer(folder: str):
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    try:
        return Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    except Exception:  # a file the installed tokenizers cannot read: estimate instead
        return None


def prompt_counter(model_cfg: ModelConfig | None) -> tuple[Callable[[GenerationRequest], int], str]:
    """How to count a request's prompt tokens, and the words saying how."""
    folder = Path(model_cfg.model) if model_cfg else None
    tok = _tokenizer(str(folder)) if folder and (folder / "tokenizer.json").is_file() else None
    if tok is not None:

        def count(req: GenerationRequest) -> int:
            return sum(len(tok.encode(t, add_special_tokens=False).ids) for t in _texts(req))

        return count, f"prompt: the tokenizer of {folder.name}"

    def estimate(req: GenerationRequest) -> int:
        return sum(len(t) for t in _texts(req)) // CHARS_PER_TOKEN

    return estimate, f"prompt: ~{CHARS_PER_TOKEN} characters a token"


def output_tokens(
    cached: list[GenerationResponse], to_send: int, n: int, max_tokens: int
) -> tuple[int, str]:
    """Output tokens of `to_send` requests of `n` samples, and how it was estimated."""
    samples = [c.completion_tokens for r in cached for c in r.completions]
    if samples:
        mean = sum(samples) / len(samples)
        return round(mean * n * to_send), f"output: mean of {len(samples)} cached samples"
    return max_tokens * n * to_send, "output: max_tokens (no cached sample to measure)"


def gpu_hours(model_cfg: ModelConfig | None, requests: int, out_tokens: int) -> float | None:
    """GPU-hours of the sends on the recipe's measured throughput; None without one."""
    t = model_cfg.throughput if model_cfg else None
    if t is None:
        return None
    if t.requests_per_s:
        seconds = requests / t.requests_per_s
    else:
        seconds = out_tokens / t.output_tokens_per_s
    return seconds * (t.gpus or model_cfg.tensor_parallel_size) / 3600
