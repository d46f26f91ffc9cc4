"""What model produced an eval output: the content of its weights, not its folder name.

In: the `--model` of an eval (a local model folder, a Hub id, or a served model's name)
and the eval's output folder (where the hashes are memoised). Out: an identity string
that changes whenever the weights change: for a local folder, the sha256 of every weight
and config file (memoised by path, size and modification time, so an unchanged 15 GB
checkpoint is hashed once); for anything else, the name and the revision given.
Retraining into the same folder therefore makes every stored answer stale.

`default_out_dir` names an eval's default output folder from the model's org, name and
revision and the dataset: two of them never share a folder.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from vlm_autodrive.builders.core.fingerprint import MODEL_MEMO, model_files
from vlm_autodrive.builders.core.fingerprint import model_identity as fingerprint_identity

MEMO = MODEL_MEMO


def model_identity(model: str, revision: str | None, memo_dir: Path) -> str:
    """The identity of `model` (see the module docstring): the function the model splits
    key their requests with (builders/core/fingerprint.py); here a folder without model
    files is an error, since eval loads the model from it."""
    folder = Path(model)
    if folder.is_dir() and not model_files(folder):
        raise FileNotFoundError(f"{folder}: no model files (config.json, *.safetensors) in it")
    return fingerprint_identity(model, revision, memo_dir)


def default_out_dir(model: str, dataset: str, config: str, split: str) -> Path:
    """`build/eval/<org>--<name>[@<revision>]--<dataset>[-<config>-<split>]-<hash>`: the
    hash is of the model's (org, name, revision), the dataset, config and split as given
    (a local folder by its resolved path), so two models, two revisions of one, or one
    model on two datasets never share a folder; the readable part says whose it is."""
    org, name, revision = _model_parts(model)
    readable = f"{Path(org).name}--{name}" if org else name  # a folder: its parent's name
    readable += f"@{revision}" if revision else ""
    data_name = Path(dataset.split("@")[0].rstrip("/")).name or dataset
    tail = "" if config == "mcq" and split == "test" else f"-{config}-{split}"
    ident = [org, name, revision, _where(dataset), config, split]
    digest = hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:8]
    return Path("build") / "eval" / f"{_slug(readable)}--{_slug(data_name)}{tail}-{digest}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]+", "-", text).strip("-") or "model"


def _where(name: str) -> str:
    """A local folder by its resolved path (however it was spelled), anything else as is."""
    path = Path(name)
    return str(path.resolve()) if path.is_dir() else name


def _model_parts(model: str) -> tuple[str, str, str | None]:
    """(org, name, revision) of `--model`: a Hub-style `org/name[@revision]`, or a local
    folder (its resolved path as the org, its name; no revision)."""
    path = Path(model)
    if path.is_dir():
        resolved = path.resolve()
        return str(resolved.parent), resolved.name, None
    base, _, revision = model.partition("@")
    org, _, name = base.rstrip("/").rpartition("/")
    return org, name or base, revision or None
