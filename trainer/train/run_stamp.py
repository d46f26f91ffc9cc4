"""The training run's stamp: what an output folder was trained from, and whether it ended.

In: the output folder, the recipe (as JSON), the training data files and `max_steps`.
Out: `train_stamp.json` in the folder: the content key of those inputs (the data files by
their sha256), the recipe itself (to say what changed) and `finished`. With it a finished
run with the same inputs does nothing, `--resume` continues an unfinished one, and a
changed recipe is refused unless the user names another folder or passes `--force`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.files import file_sha256, read_json, write_json
from vlm_autodrive.builders.core.stage import content_key

STAMP = "train_stamp.json"


def run_key(recipe: dict[str, Any], data_files: list[Path], max_steps: int | None) -> str:
    """The content key of a training run's inputs (the output folder itself excluded)."""
    recipe = {k: v for k, v in recipe.items() if k != "output_dir"}
    data = {Path(f).name: file_sha256(Path(f)) for f in data_files}
    return content_key({"recipe": recipe, "data": data, "max_steps": max_steps})


def read_stamp(out: Path) -> dict[str, Any] | None:
    try:
        return read_json(out / STAMP)
    except (OSError, ValueError):
        return None


def changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted recipe keys whose values differ (for the refusal message)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


def check_folder(out: Path, key: str, recipe: dict[str, Any], force: bool) -> str:
    """What to do with `out`: `done` (finished with these inputs), `continue` (same inputs,
    not finished) or `start`. Raises ValueError when `out` holds training from other
    inputs (a finished run, or checkpoints), unless `force`, which empties it first."""
    stamp = read_stamp(out)
    if stamp is None:
        return "start"
    if stamp.get("key") == key:
        return "done" if stamp.get("finished") else "continue"
    if not stamp.get("finished") and not any(out.glob("checkpoint-*")):
        return "start"  # a run from other inputs that never saved anything
    if not force:
        what = changed_keys(stamp.get("recipe", {}), recipe) or ["the training data"]
        raise ValueError(
            f"{out} holds a run trained from other inputs (changed: {', '.join(what[:8])}); "
            "choose another --output-dir, or pass --force to start over in it"
        )
    shutil.rmtree(out)
    return "start"


def write_stamp(out: Path, key: str, recipe: dict[str, Any], finished: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / STAMP,
        {"key": key, "recipe": json.loads(json.dumps(recipe, default=str)), "finished": finished},
    )
