"""A tiny real build (synthetic videos, real PyAV cuts, rule splits, no model) driven
through the `autodrive` command line, for the tests of missing sources, damaged clips,
stale stages and read-only releases."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import yaml

from vlm_autodrive.cli import main


def tiny_recipe(root: Path, **extra) -> Path:
    """A recipe of 6 synthetic 8 s videos (96x64), 2 s reencoded windows, rule splits."""
    recipe = {
        "manifest": str(root / "sample" / "manifest.jsonl"),
        "build_dir": str(root / "build"),
        "sample": {"videos": 6, "seed": 3, "duration": 8.0, "width": 96, "height": 64},
        "chunk": {"window": 2.0, "stride": 2.0, "margin": 0.5, "mode": "reencode", "workers": 1},
        "splits": {"test_per_class": 1, "on_short": "take_available"},
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
