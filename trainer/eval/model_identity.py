"""What model produced an eval output: the content of its weights, not its folder name.

In: the `--model` of an eval (a local model folder, a Hub id, or a served model's name)
and the eval's output folder (where the hashes are memoised). Out: an identity string
that changes whenever the weights change: for a local folder, the sha256 of every weight
and config file (memoised by path, size and modification time, so an unchanged 15 GB
checkpoint is hashed once); for anything else, the name and the revision given.
Retraining into the same folder therefore makes every stored answer stale.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from vlm_autodrive.builders.core.files import file_sha256, write_json

MEMO = "model_hashes.json"
# The files that decide what a model answers (weights, configs, tokenizer, chat template).
_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.gguf", "*.json", "*.jinja", "*.model")
# What `autodrive train` writes beside the weights about the run, not the model: rewriting
# them (a re-run that does nothing, a resumed run's summary) must not make answers stale.
_RUN_RECORDS = {"train_stamp.json", "train_summary.json", "trainer_state.json", "training_args.bin"}


def model_identity(model: str, revision: str | None, memo_dir: Path) -> str:
    """The identity of `model` (see the module docstring)."""
    folder = Path(model)
    if not folder.is_dir():
        return f"{model}@{revision or 'unpinned'}"
    memo_path = memo_dir / MEMO
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    files = sorted(
        {
            f
            for pattern in _PATTERNS
            for f in folder.glob(pattern)
            if f.is_file() and f.name not in _RUN_RECORDS
        },
        key=lambda f: f.name,
    )
    if not files:
        raise FileNotFoundError(f"{folder}: no model files (config.json, *.safetensors) in it")
    digests, changed = {}, False
    for f in files:
        st = f.stat()
        stamp = f"{f.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        if memo.get(stamp) is None:
            memo[stamp] = file_sha256(f)
            changed = True
        digests[f.name] = memo[stamp]
    if changed:
        memo_dir.mkdir(parents=True, exist_ok=True)
        write_json(memo_path, memo)
    text = json.dumps(digests, sort_keys=True)
    return "weights:" + hashlib.sha256(text.encode()).hexdigest()
