"""Build recipes: one validated YAML that drives ingest, chunking and the splits.

A bad recipe fails at load with the file and the dotted path of the offending key.
Relative paths in a recipe file are relative to the recipe's folder (as manifest paths
are to the manifest's), except in the bundled recipes, which are run from anywhere and
write under the working directory; paths given with `--set` are relative to the
working directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from vlm_autodrive.builders.core.errors import InputError
from vlm_autodrive.builders.core.fingerprint import FILE_INPUT, NOT_AN_INPUT
from vlm_autodrive.builders.core.ray_cluster import RaySettings
from vlm_autodrive.builders.core.strict import Strict, load_yaml, read_yaml_mapping, validate_model
from vlm_autodrive.builders.generate.config import GenerateConfig
from vlm_autodrive.builders.rules.config import RuleSplitsConfig

X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)


def check_x264_preset(v: str) -> str:
    """`v` if it is one of x264's presets (checked here, before any video is cut)."""
    if v not in X264_PRESETS:
        raise ValueError(f"{v!r} is not an x264 preset; use one of {', '.join(X264_PRESETS)}")
    return v


class SampleConfig(Strict):
    """Synthetic sample to generate before ingest (`manifest` then points into it)."""

    videos: int = 12
    seed: int = 0
    duration: float = 20.0
    width: int = 320
    height: int = 180
    fps: float = 30.0
    gop: int = Field(30, description="keyframe interval in frames")

    @field_validator("*")
    @classmethod
    def _in_bounds(cls, value: Any, info: ValidationInfo) -> Any:
        # builders/synthetic/limits.py: the sample code checks the same bounds again
        from vlm_autodrive.builders.synthetic.limits import sample_setting_problem

        problem = sample_setting_problem(info.field_name, value)
        if problem:
            raise ValueError(problem)
        return value


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
    mode: Literal["copy", "reencode", "smart"] = Field(
        "smart",
        description="smart (the default): frame exact like reencode at near stream-copy "
        "cost on H.264 sources: re-encodes only the frames before the window's first "
        "keyframe (and after the last whole B-frame group) and stream-copies the rest; a "
        "window it cannot join (not H.264, rotated, odd size, variable frame rate, no "
        "keyframe inside, open GOP) is re-encoded, the reason counted in the summary's "
        "smart_fallback. reencode: frame exact, every frame re-encoded; copy: stream copy "
        "from keyframes",
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
    max_gap: float = Field(
        1.0,
        gt=0,
        description="variable frame rate: a video with a gap between two frames longer "
        "than this many seconds is rejected (shorter gaps repeat the frame before)",
    )
    max_missing: float = Field(
        0.05,
        ge=0,
        le=1,
        description="variable frame rate: a video missing more than this share of its "
        "nominal frame grid is rejected",
    )
    decode: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="decoder for re-encoding: NVDEC (`cuda`), the CPU, or `auto` (NVDEC "
        "when it opens, else the CPU); the clips are the same bytes",
        json_schema_extra=NOT_AN_INPUT,
    )
    crf: int = Field(23, ge=0, le=51)
    preset: str = "veryfast"
    workers: int = Field(
        0, ge=0, description="processes; 0 = one per core", json_schema_extra=NOT_AN_INPUT
    )

    @field_validator("preset")
    @classmethod
    def _x264_preset(cls, v: str) -> str:
        return check_x264_preset(v)

    @model_validator(mode="after")
    def _margin_fits(self) -> ChunkConfig:
        if 2 * self.margin > self.window:
            raise ValueError("margin must be at most half the window")
        return self


class AuditConfig(Strict):
    """The audit at the end of `autodrive build` (builders/audit/: blind baselines,
    duplicates, statistics; `autodrive audit BUILD` runs it alone, plots included)."""

    after_build: bool = Field(True, description="run the audit when the build ends")
    plots: bool = Field(
        False,
        description="write its PNG plots too (matplotlib: a few seconds; `autodrive audit` "
        "writes them whatever this says)",
    )


class IngestConfig(Strict):
    """How ingest treats its sources (builders/ingest/sources.py)."""

    duplicates: Literal["reject", "group"] = Field(
        "reject",
        description="byte-identical video files under different ids: `reject` the later "
        "rows (by manifest line), naming the id they duplicate; or `group`: keep them, "
        "and the train/test assignment puts them all on one side",
    )
    near_duplicates: Literal["group", "off"] = Field(
        "group",
        description="near-duplicate sources: a re-encoded or resized copy of a video under "
        "another id (common when datasets are merged: MM-AU includes DADA-2000). `group`: "
        "ingest records each file's perceptual signature (8 frames, builders/audit/phash.py; "
        "memoised by size and modification time) and the train/test assignment puts videos "
        "within the audit's threshold on one side; `off`: no signature, no grouping",
    )

    @field_validator("near_duplicates", mode="before")
    @classmethod
    def _yaml_off(cls, v: Any) -> Any:
        # YAML 1.1 reads a bare `off` (and `on`) as a boolean
        return {False: "off", True: "group"}.get(v, v) if isinstance(v, bool) else v


class BuildRecipe(Strict):
    """A whole build: where the videos are, where the build goes, how to cut and split."""

    manifest: str = Field(json_schema_extra=FILE_INPUT)
    build_dir: str = Field(json_schema_extra=NOT_AN_INPUT)
    taxonomy: str | None = Field(
        None,
        description="the label set (taxonomy YAML); default: the taxonomy.yaml of "
        "splits.templates when that folder has one, else the bundled templates/taxonomy.yaml",
        json_schema_extra=FILE_INPUT,
    )
    engine: Literal["local", "ray"] = Field(
        "local",
        description="where videos are cut: `local` (a process pool on this machine) or "
        "`ray` (Ray Data tasks on the cluster of the `ray:` section; the same clips)",
        json_schema_extra=NOT_AN_INPUT,
    )
    ray: RaySettings = Field(RaySettings(), json_schema_extra=NOT_AN_INPUT)
    sample: SampleConfig | None = None
    ingest: IngestConfig = IngestConfig()
    audit: AuditConfig = AuditConfig()
    chunk: ChunkConfig = ChunkConfig()
    splits: RuleSplitsConfig = RuleSplitsConfig()
    generate: GenerateConfig | None = None


def recipe_taxonomy(recipe: BuildRecipe) -> str | None:
    """The taxonomy file a recipe builds with: its `taxonomy:` key; else the
    `taxonomy.yaml` of its `splits.templates` folder (a copied templates folder carries
    the label set with the wording); else None, the bundled one."""
    if recipe.taxonomy:
        return recipe.taxonomy
    if recipe.splits.templates:
        candidate = Path(recipe.splits.templates) / "taxonomy.yaml"
        if candidate.is_file():
            return str(candidate)
    return None


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> BuildRecipe:
    """Load a build recipe YAML; raise ValueError naming the file and key path.

    `overrides` are `dotted.key=value` strings (values parsed as YAML), applied before
    validation, e.g. `generate.models.text.backend=vllm`.
    """
    data = read_yaml_mapping(path, "a build recipe")
    if not _is_bundled(Path(path)):
        resolve_recipe_paths(data, Path(path).resolve().parent)
    for item in overrides or []:
        apply_override(data, item)
    return validate_model(path, BuildRecipe, data)


# The keys of a build recipe that hold paths; `*` is any key of that mapping.
_PATH_KEYS = (
    ("manifest",),
    ("build_dir",),
    ("taxonomy",),
    ("splits", "templates"),
    ("splits", "pin_assignment"),
    ("generate", "prompts"),
    ("generate", "splits", "*", "import_file"),
    ("generate", "models", "*", "model"),
)


def resolve_recipe_paths(data: dict, folder: Path) -> None:
    """Make the relative paths of a recipe file relative to its folder, in place.

    A model is a path only when it is one there (else it is a Hub id or a served name);
    `pin_assignment` only when it is not a Hub release (ORG/NAME@vX.Y.Z).
    """

    def walk(node: object, keys: tuple[str, ...]) -> None:
        if not isinstance(node, dict) or not keys:
            return
        head, rest = keys[0], keys[1:]
        for k in list(node) if head == "*" else [head]:
            if k not in node:
                continue
            if rest:
                walk(node[k], rest)
            elif isinstance(node[k], str) and node[k].strip():
                node[k] = _resolved(node[k], folder, k == "model" or "@" in node[k])

    for keys in _PATH_KEYS:
        walk(data, keys)


def _resolved(value: str, folder: Path, only_if_there: bool) -> str:
    p = Path(value).expanduser()
    if p.is_absolute():
        return str(p)
    if only_if_there and not (folder / p).exists():
        return value
    return str(folder / p)


def _is_bundled(path: Path) -> bool:
    """A recipe shipped with the package (its relative paths are the working directory's)."""
    from vlm_autodrive.resources import bundled

    return path.resolve().is_relative_to(bundled("recipes").resolve())


def apply_override(data: dict, item: str) -> None:
    """Set `a.b.c=value` in nested dicts (creating levels); the value is parsed as YAML."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise InputError("--set", f"{item!r}: expected dotted.key=value")
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise InputError("--set", f"{part} is not a mapping", key)
        node = child
    node[leaf] = load_yaml(raw, f"--set {key}")


def worker_count(requested: int) -> int:
    """Processes to use: `requested`, or one per available core when 0."""
    if requested:
        return requested
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
