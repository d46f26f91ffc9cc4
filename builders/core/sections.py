"""Sections of a build recipe read outside their own stage: the chunk settings (clips,
ingest's frame-folder encoder, the command line), ingest's and the audit's settings, the
x264 presets, and the worker count.

In: YAML values (through builders/recipe.py or the command line); out: validated
settings. They live in `core`, and import no stage package, so that a stage reads them
without importing the recipe (builders/recipe.py, which composes every stage's section).
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from vlm_autodrive.builders.core.fingerprint import NOT_AN_INPUT
from vlm_autodrive.builders.core.strict import Strict

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
    encoder_threads: int = Field(
        1,
        ge=1,
        le=16,
        description="x264 frame threads per clip encoder. 1 (the default) costs the least "
        "CPU per clip and keeps every core busy while there are at least as many videos as "
        "workers; raise it for a few long videos on many cores. The clips' bytes depend on "
        "it (x264's output does), not on `workers`",
    )
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


def worker_count(requested: int) -> int:
    """Processes to use: `requested`, or one per available core when 0."""
    if requested:
        return requested
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
