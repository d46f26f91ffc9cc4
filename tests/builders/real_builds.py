"""A tiny real build (synthetic videos, real PyAV cuts, rule splits, no model) driven
through the `autodrive` command line, for the tests of missing sources, damaged clips,
stale stages and read-only releases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from vlm_autodrive.cli import main
from vlm_autodrive.resources import bundled


def tiny_recipe(root: Path, **extra) -> Path:
    """A recipe of 6 synthetic 8 s videos (96x64), 2 s reencoded windows, rule splits."""
    recipe = {
        "manifest": str(root / "sample" / "manifest.jsonl"),
        "build_dir": str(root / "build"),
        "sample": {"videos": 6, "seed": 3, "duration": 8.0, "width": 96, "height": 64},
        "chunk": {"window": 2.0, "stride": 2.0, "margin": 0.5, "mode": "reencode", "workers": 1},
        "rules": {"test_per_class": 1, "on_short": "take_available"},
        **extra,
    }
    root.mkdir(parents=True, exist_ok=True)
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def autodrive(capsys, *args: str) -> tuple[int, str]:
    """Run `autodrive ARGS` in this process: (exit code, stdout + stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out + out.err


def clip_states(build: Path) -> dict[str, tuple[int, int]]:
    """Every clip file's (size, modification time): equal when nothing was re-cut."""
    return {
        p.relative_to(build).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted((build / "clips").rglob("*.mp4"))
    }


def clip_paths(build: Path) -> list[str]:
    return pq.read_table(build / "chunk" / "clips.parquet", columns=["path"])["path"].to_pylist()


NEW_CLASS = """\
  - name: Sudden Stop
    mcq_option: "Sudden Stop: the ego vehicle brakes hard to a standstill, no crash."
    description: "The ego vehicle brakes hard and stops abruptly."
    is_event: true
"""


def new_class_build(root, capsys):
    """The tiny build with Sudden Stop added through `rules.templates` (a copied templates
    folder whose taxonomy.yaml has it; no `taxonomy:` key) and one event relabelled."""
    mine = root / "templates"
    shutil.copytree(bundled("templates"), mine)
    tax = mine / "taxonomy.yaml"
    text = tax.read_text()
    cut = text.index("  - name: Normal Driving")
    tax.write_text(text[:cut] + NEW_CLASS + text[cut:])
    recipe = tiny_recipe(root, rules={"test_per_class": 1, "on_short": "take_available",
                                      "templates": str(mine)})  # fmt: skip
    sample = ["--videos", "6", "--seed", "3", "--duration", "8", "--width", "96", "--height", "64"]
    assert autodrive(capsys, "sample", "--out", root / "sample", *sample)[0] == 0
    manifest = root / "sample" / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    next(r for r in rows if r["label"] == "Near-Collision")["label"] = "Sudden Stop"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, text = autodrive(capsys, "build", recipe)
    assert code == 0, text
    return recipe
