"""Record type of the clips stage: one clip cut from a source video.

Its field names are the Arrow columns of `chunk/clips.parquet` (`CLIP_SCHEMA`).
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa


@dataclasses.dataclass
class ClipRecord:
    """Chunk output: one clip cut from a source video (a row of `chunk/clips.parquet`).

    `path` is relative to the build folder. Times are seconds in the source video;
    `event_offset` is the event moment relative to the clip start (None if outside).
    """

    clip_id: str
    video_id: str
    path: str
    planned_start: float
    planned_end: float
    start: float
    end: float
    fps: float
    frames: int
    width: int
    height: int
    size_bytes: int
    label: str
    event_offset: float | None
    cut_mode: str
    # The display rotation flag the file carries (counter-clockwise degrees; re-encoded
    # clips are upright, 0), and what re-encoding did to the picture ("" when nothing,
    # e.g. "rotated 90; cropped 853x480 to 852x480").
    rotation: int = 0
    picture: str = ""
    # Variable frame rate, re-encoded on the nominal grid: slots that repeat the frame
    # before, and source frames inside the clip not shown.
    frames_duplicated: int = 0
    frames_dropped: int = 0


CLIP_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("video_id", pa.string()),
        ("path", pa.string()),
        ("planned_start", pa.float64()),
        ("planned_end", pa.float64()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("fps", pa.float64()),
        ("frames", pa.int64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("size_bytes", pa.int64()),
        ("label", pa.string()),
        ("event_offset", pa.float64()),
        ("cut_mode", pa.string()),
        ("rotation", pa.int32()),
        ("picture", pa.string()),
        ("frames_duplicated", pa.int64()),
        ("frames_dropped", pa.int64()),
    ]
)
