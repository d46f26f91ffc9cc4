"""CCD (Car Crash Dataset) crash list -> manifest entries.

In: `Crash-1500.txt`, one line per clip:
`vidname,[b0, b1, ..., b49],startframe,youtubeID,Day|Night,Normal|Snowy|Rainy,Yes|No`
(one 0/1 label per frame, 1 = the crash is under way; then the clip's start frame in
the YouTube video, the YouTube id, light, weather, and whether the ego vehicle is
involved), and a `CcdConfig` (`recipes/adapters/ccd.yaml`).
Out: an AdapterResult. The event spans the first to the last frame labelled 1:
event_start = first / fps, event_end = last / fps (the timestamp of the last positive
frame, the same index / fps rule as DoTA), event_time = onset (or the middle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import Field, field_validator

from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.ingest.adapters.mapping import (
    AdapterError,
    AdapterResult,
    FrameConfig,
    ResultBuilder,
    RowError,
    check_template,
    frame_seconds,
    render_path,
)
from vlm_autodrive.builders.ingest.records import Actor


class CcdConfig(FrameConfig):
    """ccd.yaml: the shared keys plus the list's frame count and ego-involvement actors.

    The crash list has one class, so `labels` is keyed on what tells its rows apart:
    the ego-involvement field (`Yes`/`No`).
    """

    adapter: Literal["ccd"]
    frames: int = Field(50, ge=1, description="frame labels per line")
    source_class: str = Field(description="the class CCD gives every row of this list")
    involvement: dict[str, list[Actor]] = Field(description="last field (Yes/No) -> actors")

    @field_validator("path_template")
    @classmethod
    def _template(cls, v: str) -> str:
        return check_template(v, {"video_id"})


class CcdRow(NamedTuple):
    """One parsed line of the crash list."""

    vidname: str
    frame_labels: list[int]
    startframe: int
    youtube_id: str
    light: str
    weather: str
    ego_involved: str


_TAIL = "startframe, youtubeID, light, weather, ego involvement"


def parse_line(text: str, frames: int) -> CcdRow:
    """Split one crash-list line; RowError says what is malformed.

    The bracketed label list holds commas itself, so the line is cut at `,[` and `],`
    before the remaining fields are split on commas.
    """
    head, sep, rest = text.partition(",[")
    if not sep:
        raise RowError("no bracketed frame-label list after the video name")
    inner, sep, tail = rest.partition("],")
    if not sep:
        raise RowError("the frame-label list is not closed by '],'")
    vidname = head.strip()
    if not vidname:
        raise RowError("empty video name")
    labels = [x.strip() for x in inner.split(",")]
    if any(x not in ("0", "1") for x in labels):
        raise RowError("frame labels must all be 0 or 1")
    if len(labels) != frames:
        raise RowError(f"expected {frames} frame labels, got {len(labels)}")
    fields = [x.strip() for x in tail.split(",")]
    if len(fields) != 5:
        raise RowError(f"expected 5 fields after the label list ({_TAIL}), got {len(fields)}")
    start, youtube_id, light, weather, ego = fields
    if not start.isdigit():
        raise RowError(f"startframe {start!r} is not a frame number")
    return CcdRow(vidname, [int(x) for x in labels], int(start), youtube_id, light, weather, ego)


def convert(
    source: Path,
    config: CcdConfig,
    video_root: Path | None = None,
    taxonomy: Taxonomy | None = None,
) -> AdapterResult:
    """Convert a CCD crash list; lines that cannot be used become rejects."""
    out = ResultBuilder(config, source, taxonomy)
    try:
        lines = Path(source).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise AdapterError(f"{source}: cannot read the CCD list: {e}") from None
    for line, text in enumerate(lines, start=1):
        if not text.strip():
            continue  # blank lines (a trailing newline, say) are not rows
        out.result.rows += 1
        vidname = None
        try:
            row = parse_line(text, config.frames)
            vidname = row.vidname
            _convert_row(out, config, row, line, video_root)
        except RowError as e:
            out.reject(line, vidname, f"line {line}: {e}")
    return out.finish()


def _convert_row(
    out: ResultBuilder, config: CcdConfig, row: CcdRow, line: int, video_root: Path | None
) -> None:
    label = out.label(row.ego_involved, line)
    if label is None:
        return
    positive = [i for i, b in enumerate(row.frame_labels) if b]
    if not positive:
        raise RowError("no frame is labelled 1, so the list gives no event time")
    if row.ego_involved not in config.involvement:
        raise RowError(f"ego involvement {row.ego_involved!r} is not in involvement")
    out.add(
        line,
        row.vidname,
        render_path(config.path_template, video_root, video_id=row.vidname),
        label,
        frame_seconds(positive[0], positive[-1], config.fps, config.event_time),
        config.source_class,
        config.involvement[row.ego_involved],
        light=out.value("light", row.light),
        weather=out.value("weather", row.weather),
    )
