"""Paths of the data files bundled with the package (templates, prompts, recipes)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def bundled(folder: str, name: str = "") -> Path:
    """Path of `name` inside a bundled folder (`templates`, `prompts` or `recipes`).

    Works for editable and plain installs: the folders are subpackages of `vlm_autodrive`.
    """
    root = Path(str(files(f"vlm_autodrive.{folder}")))
    return root / name if name else root


def resolve_recipe_path(path: str | Path) -> Path:
    """A recipe path as given, or else the bundled recipe of that relative name.

    `recipes/quickstart.yaml` therefore works from the repository and from anywhere
    once the package is installed.
    """
    p = Path(path)
    if p.exists():
        return p
    rel = p.parts[1:] if p.parts and p.parts[0] == "recipes" else p.parts
    candidate = bundled("recipes").joinpath(*rel)
    if candidate.exists():
        return candidate
    raise FileNotFoundError(f"recipe not found: {path}")
