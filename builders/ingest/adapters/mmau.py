"""MM-AU (CAP-DATA and DADA-2000) annotation sheets -> manifest entries.

In: a workbook (`.xls`/`.xlsx`) or a folder of them (read in path order), and an
`MmauConfig` (`recipes/adapters/mmau.yaml`). Two kinds of sheet are read alike, every
sheet whose first row names the required columns: the annotation sheets
(`cap_text_annotations.xls`, `dada_text_annotations.xlsx`: video, coded weather / light /
scenes / linear (road), type, whether an accident occurred, abnormal start / accident /
abnormal end / total frames, texts) and the Q&A sheets (video, type, `tai`/`tco`/`tae`,
question, answer, options `a0`-`a4`). Columns are found by header (`columns`: aliases;
case, full-width forms and a parenthesised legend ignored), never by position.
Out: an AdapterResult. Which subset (CAP or DADA) a workbook holds is the nearest part of
its path naming one (`subsets.*.tokens`); the subset sets the id (`video` alone is unique
in CAP, DADA needs `type` too), the id's digits (leading zeros kept, restored when a sheet
stored the id as a number) and the path. The source label is `<involvement>: <outcome>`:
involvement `ego` for `ego_types`, else `other`; outcome `accident` (an accident frame),
`no accident` (accident frame -1, an abnormal window) or `no window`. Frames are 1-based
(`first_frame`) at `fps`: seconds = (frame - first_frame) / fps; event_start / event_time /
event_end = abnormal start / accident frame / abnormal end (`no accident`: the window's
middle or onset). The cause question goes to metadata.cause. A bad cell is a reject
naming the sheet, row and column.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from vlm_autodrive.builders.core.strict import Strict
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.ingest.adapters.mapping import (
    AdapterConfig,
    AdapterError,
    AdapterResult,
    ResultBuilder,
    RowError,
    check_template,
)
from vlm_autodrive.builders.ingest.adapters.sheets import (
    SUFFIXES,
    CellError,
    Sheet,
    normalize_header,
    read_workbook,
)
from vlm_autodrive.builders.ingest.records import Actor, CauseQuestion

Column = Literal[
    "video", "type", "start", "accident", "end", "total", "occurred",
    "weather", "light", "scene", "road", "question", "answer",
]  # fmt: skip
REQUIRED: tuple[Column, ...] = ("video", "type", "start", "accident", "end")
CODED: tuple[Column, ...] = ("weather", "light", "scene", "road")


class Subset(Strict):
    """One MM-AU part: how its workbooks are recognised and its ids and paths made."""

    tokens: list[str] = Field(min_length=1, description="path words naming this subset")
    video_digits: int = Field(ge=1, description="`video` is zero-padded to this width")
    id_template: str = Field(description="video_id from {video} and {type}")
    path_template: str = Field(description="video path from {video}, {type}, {video_id}")

    @field_validator("id_template")
    @classmethod
    def _id(cls, v: str) -> str:
        return check_template(v, {"video", "type"})

    @field_validator("path_template")
    @classmethod
    def _path(cls, v: str) -> str:
        return check_template(v, {"video", "type", "video_id"})


class MmauConfig(AdapterConfig):
    """mmau.yaml: the shared keys plus subsets, columns, codes and frame timing."""

    adapter: Literal["mmau"]
    fps: float = Field(30.0, gt=0, description="frame rate the frame numbers count at")
    first_frame: int = Field(1, ge=0, description="number of a video's first frame")
    no_accident_time: Literal["onset", "middle"] = "middle"
    subsets: dict[str, Subset] = Field(min_length=1)
    subset: str | None = Field(None, description="force one subset instead of detecting it")
    exclude: list[str] = Field(default_factory=list, description="file name globs to skip")
    sheet: str | None = Field(None, description="read only this sheet (default: all that fit)")
    columns: dict[Column, list[str]] = Field(description="column -> header aliases")
    option_columns: list[str] = Field(description="headers of the cause options, in order")
    ego_types: list[int | str] = Field(description="accident types with the ego vehicle")
    known_types: list[int | str] = Field(description="every valid accident type code")
    codes: dict[Literal["weather", "light", "scene", "road"], dict[int, str]]
    involvement: dict[Literal["ego", "other"], list[Actor]]
    splits: dict[str, str] = Field(default_factory=dict, description="file stem -> split")

    @field_validator("ego_types", "known_types")
    @classmethod
    def _ranges(cls, v: list[int | str]) -> list[int | str]:
        expand(v)
        return v

    @field_validator("columns")
    @classmethod
    def _required(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        missing = [c for c in REQUIRED if not v.get(c)]
        if missing:
            raise ValueError(f"columns needs aliases for {missing}")
        return v


def expand(items: list[int | str]) -> set[int]:
    """`[1-18, 61, 62]` as a set of ints; ValueError for anything else."""
    out: set[int] = set()
    for item in items:
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(item))
        if not m or (m[2] and int(m[2]) < int(m[1])):
            raise ValueError(f"{item!r} is not a number or a range like 1-18")
        out.update(range(int(m[1]), int(m[2] or m[1]) + 1))
    return out


def find_workbooks(source: Path, exclude: list[str]) -> list[Path]:
    """`source` itself, or the workbooks below the folder `source`, in path order."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise AdapterError(f"{source}: no such file or folder")
    found = sorted(
        p
        for p in source.rglob("*")
        if p.suffix.lower() in SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(source).parts)
        and not any(fnmatch.fnmatch(p.name.lower(), g.lower()) for g in exclude)
    )
    if not found:
        raise AdapterError(f"{source}: no {'/'.join(SUFFIXES)} workbook in it or below it")
    return found


def detect_subset(path: Path, config: MmauConfig) -> str:
    """The subset the nearest path part (file stem first) names, by its tokens."""
    if config.subset is not None:
        if config.subset not in config.subsets:
            raise AdapterError(f"subset {config.subset!r} is not in subsets {list(config.subsets)}")
        return config.subset
    for part in [path.stem, *reversed(path.resolve().parent.parts)]:
        words = set(re.split(r"[^0-9a-z]+", part.lower()))
        hits = [name for name, s in config.subsets.items() if words & {t.lower() for t in s.tokens}]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise AdapterError(f"{path}: path part {part!r} names several subsets {hits}")
    tokens = {k: v.tokens for k, v in config.subsets.items()}
    raise AdapterError(
        f"{path}: no part of its path names a subset (tokens: {tokens}); "
        "rename it or set `subset` in the config"
    )


def convert(
    source: Path,
    config: MmauConfig,
    video_root: Path | None = None,
    taxonomy: Taxonomy | None = None,
) -> AdapterResult:
    """Convert MM-AU workbooks; rows that cannot be used become rejects."""
    source = Path(source)
    out = ResultBuilder(config, source, taxonomy)
    ego, known = expand(config.ego_types), expand(config.known_types)
    for path in find_workbooks(source, config.exclude):
        subset = detect_subset(path, config)
        sheets = [s for s in read_workbook(path) if config.sheet in (None, s.name)]
        used = 0
        for sheet in sheets:
            header = _header(path, sheet, config)
            if header is None:
                continue
            used += 1
            reader = _Reader(out, config, path, sheet, header, subset, video_root, ego, known)
            for number, cells in sheet.rows[1:]:
                if all(c is None or (isinstance(c, str) and not c.strip()) for c in cells):
                    continue  # blank rows are not rows
                out.result.rows += 1
                reader.row(number, cells)
        if not used:
            names = [s.name for s in sheets] or "none"
            raise AdapterError(
                f"{path}: no sheet has the columns {list(REQUIRED)} in its first row "
                f"(sheets: {names}; aliases: `columns` in the config)"
            )
        out.result.notes[f"{subset} sheets read"] += used
    return out.finish()


def _header(path: Path, sheet: Sheet, config: MmauConfig) -> dict[str, int] | None:
    """Column name -> cell index from the sheet's first row; None if not a data sheet."""
    if not sheet.rows:
        return None
    cells = sheet.rows[0][1]
    found: dict[str, int] = {}
    wanted = {
        name: {normalize_header(a)[0] for a in aliases} for name, aliases in config.columns.items()
    }
    wanted |= {f"option {i}": {normalize_header(h)[0]} for i, h in enumerate(config.option_columns)}
    for i, cell in enumerate(cells):
        whole, name = normalize_header(cell)
        for column, aliases in wanted.items():
            if whole in aliases or name in aliases:
                if column in found:
                    raise AdapterError(
                        f"{path}: sheet {sheet.name!r}: columns {found[column] + 1} and {i + 1} "
                        f"both match {column!r} ({sorted(aliases)})"
                    )
                found[column] = i
    if any(c not in found for c in REQUIRED):
        return None
    return found


class _Reader:
    """Turns the rows of one sheet into entries or rejects."""

    def __init__(
        self,
        out: ResultBuilder,
        config: MmauConfig,
        path: Path,
        sheet: Sheet,
        header: dict[str, int],
        subset: str,
        video_root: Path | None,
        ego: set[int],
        known: set[int],
    ):
        self.out, self.config, self.path, self.sheet = out, config, path, sheet.name
        self.header, self.subset, self.video_root = header, config.subsets[subset], video_root
        self.texts = [str(c) for c in sheet.rows[0][1]]
        self.ego, self.known = ego, known
        self.split = config.splits.get(path.stem)

    def row(self, number: int, cells: list[Any]) -> None:
        where = f"sheet {self.sheet!r} row {number}"
        self._number, self._cells, video_id = number, cells, None
        try:
            video, kind = self._video(), self._int("type")
            if kind not in self.known:
                raise self._bad("type", f"accident type {kind} is not in known_types")
            video_id = self.subset.id_template.format(video=video, type=kind)
            self._convert(video, kind, video_id, where)
        except RowError as e:
            self.out.reject(number, video_id, f"{where}: {e}", self.path)

    def _cell(self, column: str) -> Any:
        i = self.header.get(column)
        if i is None or i >= len(self._cells):
            return None
        v = self._cells[i]
        return v.strip() or None if isinstance(v, str) else v

    def _bad(self, column: str, problem: str) -> RowError:
        # the sheet's own header text, so the message names the column as the file does
        i = self.header.get(column)
        return RowError(f"column {self.texts[i] if i is not None else column!r}: {problem}")

    def _int(self, column: str, optional: bool = False) -> int | None:
        v = self._cell(column)
        if v is None:
            if optional:
                return None
            raise self._bad(column, "empty cell")
        if isinstance(v, str) and re.fullmatch(r"-?\d+", v):
            return int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            shown = v.text if isinstance(v, CellError) else repr(v)
            raise self._bad(column, f"{shown} is not a whole number")
        return v

    def _video(self) -> str:
        v, digits = self._cell("video"), self.subset.video_digits
        text = str(v) if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else v
        if not isinstance(text, str) or not text.isdigit() or len(text) > digits:
            raise self._bad("video", f"{v!r} is not a video number of at most {digits} digits")
        return text.zfill(digits)

    def _frame(self, column: str, total: int | None, absent_ok: bool) -> int | None:
        f = self._int(column, optional=column not in REQUIRED)
        if f is None or (f == -1 and absent_ok):
            return None
        first = self.config.first_frame
        if f < first or (total is not None and f > total - 1 + first):
            span = f"{first}..{total - 1 + first}" if total is not None else f">= {first}"
            raise self._bad(column, f"frame {f} is outside {span}")
        return f

    def _convert(self, video: str, kind: int, video_id: str, where: str) -> None:
        total = self._int("total", optional=True)
        start, end = self._frame("start", total, True), self._frame("end", total, True)
        accident = self._frame("accident", total, True)
        if (start is None) != (end is None):
            raise self._bad("start" if start is None else "end", "the abnormal window has one end")
        occurred = self._int("occurred", optional=True)
        if occurred is not None and occurred != (accident is not None):
            raise self._bad(
                "occurred", f"{occurred} disagrees with accident frame {accident or -1}"
            )
        marks = [f for f in (start, accident, end) if f is not None]
        if marks != sorted(marks):
            raise RowError(
                f"need abnormal start <= accident <= abnormal end, got {start}, {accident}, {end}"
            )
        who = "ego" if kind in self.ego else "other"
        outcome = (
            "accident"
            if accident is not None
            else "no accident"
            if start is not None
            else "no window"
        )
        meta = {f: self._code(f) for f in CODED}  # bad cells reject even rows then dropped
        cause = self._cause()
        label = self.out.label(f"{who}: {outcome}", self._number)
        if label is None:
            return
        sec = self._seconds
        times = None
        if accident is not None:
            times = (
                sec(accident if start is None else start),
                sec(accident),
                sec(accident if end is None else end),
            )
        elif start is not None:
            moment = (start + end) / 2 if self.config.no_accident_time == "middle" else start
            times = (sec(start), sec(moment), sec(end))
        self.out.add(
            self._number,
            video_id,
            self._path(video, kind, video_id),
            label,
            times,
            f"type {kind}",
            self.config.involvement[who],
            where=f"{self.path} {where}",
            **{f: self.out.value(f, v) for f, v in meta.items()},
            source_split=self.split,
            cause=cause,
        )

    def _seconds(self, frame: float) -> float:
        return round((frame - self.config.first_frame) / self.config.fps, 6)

    def _path(self, video: str, kind: int, video_id: str) -> str:
        rel = self.subset.path_template.format(video=video, type=kind, video_id=video_id)
        return str(self.video_root / rel) if self.video_root is not None else rel

    def _code(self, column: str) -> str | None:
        code = self._int(column, optional=True)
        if code is None:
            return None
        table = self.config.codes.get(column, {})
        if code not in table:
            raise self._bad(column, f"code {code} is not in codes.{column} {sorted(table)}")
        return table[code]

    def _cause(self) -> CauseQuestion | None:
        n = len(self.config.option_columns)
        present = [f"option {i}" for i in range(n) if f"option {i}" in self.header]
        if not present and "answer" not in self.header:
            return None
        options = [self._cell(c) for c in present]
        answer = self._int("answer", optional=True)
        if answer is None and all(o is None for o in options):
            return None  # a sheet with the columns but no question for this video
        for c, o in zip(present, options):
            if not isinstance(o, str):
                raise self._bad(c, f"option {o!r} is not a text")
        if answer is None or not 0 <= answer < len(options):
            raise self._bad("answer", f"{answer!r} is not an index of the {len(options)} options")
        question = self._cell("question")
        try:
            return CauseQuestion(
                question=str(question) if question is not None else None,
                options=options,
                answer=answer,
            )
        except ValidationError as e:  # too many options, repeated options: this row only
            raise RowError("cause question: " + "; ".join(x["msg"] for x in e.errors())) from None
