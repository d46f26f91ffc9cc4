"""The smallest build recipe with one model split over HTTP, for tests of a build against
an OpenAI-compatible test server (tests/doubles/fake_server.py): 3 synthesized videos of
4 s, `caption_vlm` only, no retries."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_tiny_recipe(
    root: Path, base_url: str, *, model: str = "fake-model", seed: int | None = None
) -> Path:
    """Write `root/recipe.yaml` (build folder `root/build`, model `model` at `base_url`,
    `caption_vlm` with `seed` when given); returns its path."""
    split: dict = {"model": "m"} if seed is None else {"model": "m", "seed": seed}
    recipe = {
        "manifest": str(root / "sample" / "manifest.jsonl"),
        "build_dir": str(root / "build"),
        "sample": {"videos": 3, "seed": 3, "duration": 4.0, "width": 64, "height": 48},
        "chunk": {"window": 2.0, "stride": 1.0, "margin": 0.5, "mode": "copy"},
        "rules": {"test_per_class": 1, "on_short": "take_available"},
        "generate": {
            "models": {"m": {"model": model, "base_urls": [base_url], "max_retries": 0}},
            "configs": {"caption_vlm": split},
        },
    }
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path
