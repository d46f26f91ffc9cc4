"""Record types of the ingest stage: manifest entries and probed video records.

Each record's field names are the Arrow columns of the table the stage writes
(`ingest/videos.parquet`).
"""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vlm_autodrive.builders.core.answers import OPTION_LETTERS

# A video id names its clip files (`<id>_<start ms>.mp4`, ~12 characters more): file
# names stop at 255 bytes, so longer ids would stop the chunk stage, not one video.
MAX_ID_LENGTH = 200
_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
# What file systems allow (Linux's NAME_MAX and PATH_MAX, in bytes): a longer path fails
# in the kernel with an OSError that would stop the whole ingest, not one row.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4095


class Actor(BaseModel):
    """One road user involved in the video (the ego vehicle included)."""

    model_config = ConfigDict(extra="forbid")

    role: str = Field(description="`ego` or `other`")
    type: str | None = None
    motion: str | None = None
    impact_side: str | None = Field(None, description="side of this actor that was hit")


class CauseQuestion(BaseModel):
    """A multiple-choice question on the cause of the video's event, as a source gives it
    (MM-AU's Q&A sheets): the question text if present, the options, the right one."""

    model_config = ConfigDict(extra="forbid")

    question: str | None = None
    options: list[str] = Field(min_length=2)
    # strict: `true` or `"1"` is not an index (lax validation would read it as 1)
    answer: int = Field(ge=0, strict=True, description="index of the right option in `options`")

    @model_validator(mode="after")
    def _options_and_answer(self) -> CauseQuestion:
        if len(self.options) > len(OPTION_LETTERS):  # shown lettered A, B, C, ...
            raise ValueError(
                f"{len(self.options)} options: a question has at most {len(OPTION_LETTERS)}, "
                f"one per letter {OPTION_LETTERS[0]} to {OPTION_LETTERS[-1]}"
            )
        if self.answer >= len(self.options):
            n = len(self.options)
            raise ValueError(f"answer {self.answer} is not an index of the {n} options")
        seen: dict[str, int] = {}
        for i, option in enumerate(self.options):
            key = " ".join(option.split()).casefold()
            if key in seen:
                raise ValueError(
                    f"options {seen[key]} and {i} are the same ({option!r}): a question "
                    "whose options repeat has no single right answer"
                )
            seen[key] = i
        return self


class VideoMetadata(BaseModel):
    """Structured metadata of a source video. Every field may be missing."""

    model_config = ConfigDict(extra="forbid")

    weather: str | None = None
    light: str | None = None
    road: str | None = None
    scene: str | None = None
    blame: str | None = None
    evasive_action: str | None = None
    actors: list[Actor] = Field(default_factory=list)
    source_class: str | None = Field(None, description="the source dataset's own label")
    source_split: str | None = Field(
        None, description="the source dataset's split the video came from (e.g. `train`)"
    )
    cause: CauseQuestion | None = None


class ManifestEntry(BaseModel):
    """One row of a manifest in the project's own schema (JSONL, CSV or Parquet).

    Times are seconds from the start of the video. Event videos need `event_time`
    (the key moment: contact, or closest approach); `event_start`/`event_end` bound
    the event and default to `event_time`. Normal Driving videos have no event.
    """

    model_config = ConfigDict(extra="forbid")

    video_id: str
    path: str
    label: str
    # strict: a JSON `true` or `"5"` is not a time (lax validation would read 1.0 and
    # 5.0); a CSV cell, text by nature, is made a number where it is read (manifest.py)
    event_start: float | None = Field(None, strict=True)
    event_time: float | None = Field(None, strict=True)
    event_end: float | None = Field(None, strict=True)
    source: str = "manifest"
    metadata: VideoMetadata = Field(default_factory=VideoMetadata)

    @field_validator("video_id")
    @classmethod
    def _safe_id(cls, v: str) -> str:
        if not v or v[0] in "._-" or not set(v) <= _ID_CHARS:
            raise ValueError(f"video_id {v!r} must be letters, digits, '_', '.', '-'")
        if len(v) > MAX_ID_LENGTH:
            raise ValueError(
                f"video_id is {len(v)} characters long, at most {MAX_ID_LENGTH} (it names "
                f"the clip files): {v[:40]}..."
            )
        return v

    @field_validator("path")
    @classmethod
    def _usable_path(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("empty: a row needs the path of its video file")
        if "\x00" in v:
            raise ValueError(f"holds a NUL byte, which no file name can: {v!r}")
        if len(v.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
            raise ValueError(f"longer than the {MAX_PATH_BYTES} bytes a path may have")
        for name in Path(v).parts:
            size = len(name.encode("utf-8", "surrogateescape"))
            if size > MAX_NAME_BYTES:
                raise ValueError(
                    f"the file or folder name {name[:40]!r}... is {size} bytes long, more "
                    f"than the {MAX_NAME_BYTES} a file system allows"
                )
        return v

    @field_validator("event_start", "event_time", "event_end")
    @classmethod
    def _finite_time(cls, v: float | None) -> float | None:
        # NaN compares false with everything: without this the row would fail the
        # order check below with a reason that does not name the NaN
        if v is not None and not math.isfinite(v):
            raise ValueError(
                f"{v} is not a time in seconds (leave it empty for a video without an event)"
            )
        return v

    @model_validator(mode="after")
    def _event_bounds(self) -> ManifestEntry:
        times = [self.event_start, self.event_time, self.event_end]
        if self.event_time is None and any(t is not None for t in times):
            raise ValueError("event_start/event_end given without event_time")
        if self.event_time is not None:
            if self.event_start is None:
                self.event_start = self.event_time
            if self.event_end is None:
                self.event_end = self.event_time
            if not self.event_start <= self.event_time <= self.event_end:
                raise ValueError("need event_start <= event_time <= event_end")
            if self.event_start < 0:
                raise ValueError("event times must be >= 0")
        return self

    @property
    def has_event(self) -> bool:
        return self.event_time is not None


class VideoRecord(ManifestEntry):
    """Ingest output: a validated manifest entry plus what probing the file found.

    `fingerprint` names what the video's clips are made from: every manifest field, the
    probed facts, the file's size and sha256. Chunk re-cuts a video exactly when it
    changes. `sha256`: the file's bytes (videos with equal ones are duplicates).
    `perceptual_signature`: with `ingest.near_duplicates: group`, the file's perceptual
    signature (`builders/audit/phash.py`: FRAMES x 63 float32, little-endian bytes;
    videos within the threshold are near-duplicates); None when off or not decodable.
    """

    # bytes travel through JSON (the Ray chunk engine) as base64
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    duration: float
    fps: float
    frames: int
    width: int
    height: int
    codec: str
    # Display rotation (counter-clockwise degrees) and timing facts (probe.py).
    rotation: int = 0
    jitter_ms: float = 0.0
    max_gap: float = 0.0
    missing: float = 0.0
    fingerprint: str = ""
    sha256: str = ""
    perceptual_signature: bytes | None = None


ACTOR_TYPE = pa.struct(
    [
        ("role", pa.string()),
        ("type", pa.string()),
        ("motion", pa.string()),
        ("impact_side", pa.string()),
    ]
)
METADATA_TYPE = pa.struct(
    [
        ("weather", pa.string()),
        ("light", pa.string()),
        ("road", pa.string()),
        ("scene", pa.string()),
        ("blame", pa.string()),
        ("evasive_action", pa.string()),
        ("actors", pa.list_(ACTOR_TYPE)),
        ("source_class", pa.string()),
        ("source_split", pa.string()),
        (
            "cause",
            pa.struct(
                [
                    ("question", pa.string()),
                    ("options", pa.list_(pa.string())),
                    ("answer", pa.int64()),
                ]
            ),
        ),
    ]
)
_MANIFEST_FIELDS = [
    ("video_id", pa.string()),
    ("path", pa.string()),
    ("label", pa.string()),
    ("event_start", pa.float64()),
    ("event_time", pa.float64()),
    ("event_end", pa.float64()),
    ("source", pa.string()),
    ("metadata", METADATA_TYPE),
]
MANIFEST_SCHEMA = pa.schema(_MANIFEST_FIELDS)
VIDEO_SCHEMA = pa.schema(
    [
        *_MANIFEST_FIELDS,
        ("duration", pa.float64()),
        ("fps", pa.float64()),
        ("frames", pa.int64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("codec", pa.string()),
        ("rotation", pa.int32()),
        ("jitter_ms", pa.float64()),
        ("max_gap", pa.float64()),
        ("missing", pa.float64()),
        ("fingerprint", pa.string()),
        ("sha256", pa.string()),
        ("perceptual_signature", pa.binary()),
    ]
)


def read_videos(path: Path) -> list[VideoRecord]:
    """Read `ingest/videos.parquet` back into records."""
    import pyarrow.parquet as pq

    return [VideoRecord.model_validate(r) for r in pq.read_table(path).to_pylist()]
