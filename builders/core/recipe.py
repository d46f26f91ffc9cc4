"""Build recipes: one validated YAML that drives ingest, chunking and the splits.

A bad recipe fails at load with the file and the dotted path of the offending key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, model_validator

from vlm_autodrive.builders.core.ray_cluster import RaySettings
from vlm_autodrive.builders.core.strict import Strict, read_yaml_mapping, validate_model
from vlm_autodrive.builders.generate.config import GenerateConfig
from vlm_autodrive.builders.rules.config import RuleSplitsConfig


class SampleConfig(Strict):
    """Synthetic sample to generate before ingest (`manifest` then points into it)."""

    videos: int = Field(12, ge=1)
    seed: int = 0
    duration: float = Field(20.0, gt=0)
    width: int = Field(320, ge=32)
    height: int = Field(180, ge=32)
    fps: float = Field(30.0, gt=0)
    gop: int = Field(30, ge=1, description="keyframe interval in frames")


class ChunkConfig(Strict):
    """Sliding windows and the labelling rule (see builders/clips/windows.py)."""

    window: float = Field(6.0, gt=0, description="clip length in seconds")
    stride: float = Field(5.5, gt=0, description="seconds between window starts")
    margin: float = Field(1.0, ge=0, description="context kept around the event moment")
    ambiguous: Literal["drop", "event"] = Field(
        "drop", description="clips near the event without holding it: drop, or the event label"
    )
    post_event: Literal["normal", "drop"] = Field(
        "normal", description="clips after the event: Normal Driving, or dropped"
    )
    ensure_event_clip: bool = Field(
        True,
        description="add a window holding the event when no grid window does, as cut; "
        "an event video that still gets none is rejected with the reason",
    )
    short_videos: Literal["whole", "reject"] = Field(
        "whole",
        description="videos shorter than the window: one clip of the whole video "
        "(labelled by the same rule), or rejected",
    )
    event_clips: Literal["one", "all"] = Field(
        "one",
        description="windows that hold the event with the margin: `one` keeps the one with "
        "the event nearest its centre (as the paper: one event clip a video; the others are "
        "dropped as `event_duplicate`), `all` keeps every one",
    )
    mode: Literal["copy", "reencode"] = Field(
        "reencode", description="reencode: frame exact; copy: stream copy from keyframes"
    )
    max_copy_stretch: float = Field(
        1.0,
        ge=0,
        description="copy mode: the most seconds a keyframe may move a window's start "
        "earlier; a window stretched further is handled by `stretched`",
    )
    stretched: Literal["reencode", "reject"] = Field(
        "reencode",
        description="copy mode, a window past max_copy_stretch: re-encoded frame exact, "
        "or not cut (counted as dropped `copy_stretch`; an event window: the video is "
        "rejected)",
    )
    crf: int = Field(23, ge=0, le=51)
    preset: str = "veryfast"
    workers: int = Field(0, ge=0, description="processes; 0 = one per core")

    @model_validator(mode="after")
    def _margin_fits(self) -> ChunkConfig:
        if 2 * self.margin > self.window:
            raise ValueError("margin must be at most half the window")
        return self


class BuildRecipe(Strict):
    """A whole build: where the videos are, where the build goes, how to cut and split."""

    manifest: str
    build_dir: str
    taxonomy: str | None = None
    engine: Literal["local", "ray"] = Field(
        "local",
        description="where videos are cut: `local` (a process pool on this machine) or "
        "`ray` (Ray Data tasks on the cluster of the `ray:` section; the same clips)",
    )
    ray: RaySettings = RaySettings()
    sample: SampleConfig | None = None
    chunk: ChunkConfig = ChunkConfig()
    splits: RuleSplitsConfig = RuleSplitsConfig()
    generate: GenerateConfig | None = None


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> BuildRecipe:
    """Load a build recipe YAML; raise ValueError naming the file and key path.

    `overrides` are `dotted.key=value` strings (values parsed as YAML), applied before
    validation, e.g. `generate.models.text.backend=vllm`.
    """
    data = read_yaml_mapping(path, "a build recipe")
    for item in overrides or []:
        apply_override(data, item)
    return validate_model(path, BuildRecipe, data)


def apply_override(data: dict, item: str) -> None:
    """Set `a.b.c=value` in nested dicts (creating levels); the value is parsed as YAML."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ValueError(f"override {item!r}: expected dotted.key=value")
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"override {item!r}: {part} is not a mapping")
        node = child
    node[leaf] = yaml.safe_load(raw)


def worker_count(requested: int) -> int:
    """Processes to use: `requested`, or one per available core when 0."""
    if requested:
        return requested
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
