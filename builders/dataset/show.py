"""`autodrive show`: rows of one config of a build folder, as a person reads them.

In: a build folder (its `provenance.json` lists the configs and their Parquet files), a
config name, optionally a split, `key=value` filters on any column (all must hold) and
a row limit. Out: `Selection`, the first N matching rows in file order (train, then
test), each as `ShownRow` with its fields in reading order (question, lettered options
with the answer marked, answer or caption, reasoning, conversation turns, a failure's
reason and raw output, then the remaining columns) and its provenance (source video,
the window cut from it, clip path, generator and template), joined from the clip and
video tables when the folder has them. show_text.py prints it, show_html.py writes it as
a page. Unknown configs, splits and columns are ValueErrors that list what exists.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.answers import option_letters
from vlm_autodrive.builders.core.files import read_json
from vlm_autodrive.builders.dataset.folder import PROVENANCE, SPLITS, data_files

DEFAULT_ROWS = 10
# Columns shown in the provenance lines or not worth a reader's eye (`target` repeats the
# reasoning and the answer in the training format; `content_hash` is for changelogs).
_PROVENANCE_COLUMNS = {"clip_id", "video_id", "label", "split", "generator", "template", "video"}
_HIDDEN_COLUMNS = {"content_hash", "target"}
# Columns rendered in reading order before the rest, by the label a reader sees.
_READING_ORDER = ("question", "options", "answer", "reasoning", "messages")
_FAILURE_ORDER = ("config", "kind", "reason", "raw_output")


@dataclass
class Field:
    """One labelled value of a row; `block` values keep their line breaks."""

    label: str
    text: str
    block: bool = False


@dataclass
class ShownRow:
    """A row of a config as shown: fields in reading order, options, provenance."""

    config: str
    split: str
    position: int  # the row's index in its split's Parquet file
    id: str
    label: str
    video: str | None  # the clip, relative to the build folder
    video_exists: bool
    fields: list[Field]
    options: list[tuple[str, str, bool]]  # (letter, text, is the answer)
    provenance: list[Field]
    extra: list[tuple[str, str]]  # the remaining short columns


@dataclass
class Selection:
    """What `show` selected: the rows and the counts behind them."""

    build: Path
    config: str
    splits: list[str]
    where: list[tuple[str, str]]
    rows: list[ShownRow]
    matched: dict[str, int]  # split -> rows matching the filters
    total: dict[str, int]  # split -> rows in the split

    def summary(self) -> str:
        """`showing 3 of 17 rows of mcq matching label=Collision (train 12, test 5); 40 in all`."""
        matched = sum(self.matched.values())
        per_split = ", ".join(f"{s} {self.matched[s]}" for s in self.splits)
        where = " and ".join(f"{k}={v}" for k, v in self.where)
        return (
            f"showing {len(self.rows)} of {matched} rows of {self.config}"
            + (f" matching {where}" if where else "")
            + f" ({per_split}); {sum(self.total.values())} rows in "
            + "+".join(self.splits)
        )


def parse_where(items: Iterable[str]) -> list[tuple[str, str]]:
    """`["label=Collision"]` -> `[("label", "Collision")]`; ValueError naming a malformed one."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--where {item!r}: expected KEY=VALUE, e.g. --where label=Collision")
        pairs.append((key.strip(), value))
    return pairs


def split_files(build: Path, config: str, prov: Mapping[str, Any]) -> dict[str, Path]:
    """split -> Parquet file of a config, as provenance.json (and so the card) declares
    it, train and test first (`data_files`: a folder without provenance falls back to
    its `<split>-*.parquet`)."""
    found = data_files(build, config)
    order = [s for s in SPLITS if s in found] + [s for s in found if s not in SPLITS]
    return {s: build / found[s] for s in order}


def select_rows(
    build: Path,
    config: str,
    *,
    split: str | None = None,
    where: Sequence[tuple[str, str]] = (),
    limit: int = DEFAULT_ROWS,
) -> Selection:
    """The first `limit` rows (0 = all) of `config` matching every `where` pair.

    A cell matches `value` when its text equals it (`None` reads as empty; a list cell
    matches when one of its elements does). ValueError for a folder that is not a build,
    an unknown config, split or column, each listing what exists.
    """

    if limit < 0:
        raise ValueError(f"-n {limit}: the number of rows must be 0 (all) or more")
    prov = _provenance(build)
    configs = list(prov.get("configs", {}))
    if config not in configs:
        raise ValueError(
            f"{build}: no config {config!r}; the folder has: {', '.join(configs) or 'none'}"
        )
    files = split_files(build, config, prov)
    if split is not None and split not in files:
        raise ValueError(f"config {config!r} has no split {split!r}; it has: {', '.join(files)}")
    splits = [split] if split else list(files)
    columns: list[str] = []
    for s in splits:
        if not files[s].exists():
            raise ValueError(f"{files[s]}: the {s} file of config {config!r} is missing")
        columns += [c for c in _schema(files[s]).names if c not in columns]
    unknown = [k for k, _ in where if k not in columns]
    if unknown:
        raise ValueError(
            f"--where: config {config!r} has no column {unknown[0]!r}; "
            f"its columns: {', '.join(columns)}"
        )
    picked: list[tuple[str, int, dict]] = []
    matched, total = {}, {}
    for s in splits:
        want = limit - len(picked) if limit else None
        rows, matched[s], total[s] = _scan(files[s], where, want)
        picked += [(s, pos, row) for pos, row in rows]
    clips, videos = _clip_tables(build, {r["clip_id"] for _, _, r in picked if r.get("clip_id")})
    shown = [_shown(build, config, s, pos, r, clips, videos) for s, pos, r in picked]
    return Selection(build, config, splits, list(where), shown, matched, total)


def _provenance(build: Path) -> dict:
    if not build.is_dir():
        raise ValueError(f"{build}: no such build folder")
    path = build / PROVENANCE
    if not path.exists():
        raise ValueError(
            f"{build}: not a build folder (no {PROVENANCE}); make one with "
            "`autodrive build RECIPE` first"
        )
    try:
        return read_json(path)
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None


def _schema(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowException) as e:
        raise ValueError(f"{path}: not a readable Parquet file ({e}); rebuild the config") from None


def _cell_text(value: Any) -> str:
    return "" if value is None else str(value)


def _matches(value: Any, wanted: str) -> bool:
    if isinstance(value, list):
        return any(_cell_text(v) == wanted for v in value)
    return _cell_text(value) == wanted


def _scan(
    path: Path, where: Sequence[tuple[str, str]], want: int | None
) -> tuple[list[tuple[int, dict]], int, int]:
    """(first `want` matching (position, row), matching count, row count) of one file.

    The filters are evaluated on their columns alone, batch by batch, so counting the
    matches of a large mixture never holds all of it; only the chosen rows are read whole.
    """
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    total = pf.metadata.num_rows
    keys = list(dict.fromkeys(k for k, _ in where))
    positions: list[int] = []
    if not keys:
        positions = list(range(total))
    else:
        offset = 0
        for batch in pf.iter_batches(columns=keys, batch_size=65536):
            cols = {k: batch.column(k).to_pylist() for k in keys}
            for i in range(batch.num_rows):
                if all(_matches(cols[k][i], v) for k, v in where):
                    positions.append(offset + i)
            offset += batch.num_rows
    chosen = positions if want is None else positions[:want]
    rows: list[tuple[int, dict]] = []
    if chosen:
        wanted, offset = set(chosen), 0
        for batch in pf.iter_batches(batch_size=4096):
            if offset > chosen[-1]:
                break
            hits = [i for i in range(batch.num_rows) if offset + i in wanted]
            if hits:
                rows += zip([offset + i for i in hits], batch.take(hits).to_pylist())
            offset += batch.num_rows
    return rows, len(positions), total


def _clip_tables(build: Path, clip_ids: set[str]) -> tuple[dict[str, dict], dict[str, dict]]:
    """The chosen clips' rows of chunk/clips.parquet and their videos' rows of
    ingest/videos.parquet (empty where the folder has no such table, e.g. a release)."""
    import pyarrow.parquet as pq

    clips: dict[str, dict] = {}
    path = build / "chunk" / "clips.parquet"
    if clip_ids and path.exists():
        cols = ["clip_id", "start", "end", "event_offset"]
        for r in pq.read_table(path, columns=cols).to_pylist():
            if r["clip_id"] in clip_ids:
                clips[r["clip_id"]] = r
    videos: dict[str, dict] = {}
    path = build / "ingest" / "videos.parquet"
    if clip_ids and path.exists():
        for r in pq.read_table(
            path, columns=["video_id", "path", "source", "duration"]
        ).to_pylist():
            videos[r["video_id"]] = r
    return clips, videos


def _shown(
    build: Path,
    config: str,
    split: str,
    position: int,
    row: dict,
    clips: Mapping[str, dict],
    videos: Mapping[str, dict],
) -> ShownRow:
    fields: list[Field] = []
    options: list[tuple[str, str, bool]] = []
    order = _FAILURE_ORDER + _READING_ORDER if "raw_output" in row else _READING_ORDER
    for col in order:
        value = row.get(col)
        if value is None or value == "" or value == []:
            continue
        if col == "options":
            letter = row.get("answer_letter")
            letters = option_letters(len(value))
            options = [(ch, str(o), ch == letter) for ch, o in zip(letters, value)]
        elif col == "answer":
            name = "caption" if config.startswith("caption") and "options" not in row else col
            fields.append(Field(name, str(value), block="\n" in str(value)))
        elif col == "messages":
            fields.append(Field("conversation", _turns(value), block=True))
        elif col == "config":
            fields.append(Field("failed split", str(value)))
        else:
            fields.append(Field(col.replace("_", " "), str(value), block="\n" in str(value)))
    shown_cols = {*order, "answer_letter", *_PROVENANCE_COLUMNS, *_HIDDEN_COLUMNS, "id"}
    extra = [
        (k, _cell_text(v))
        for k, v in row.items()
        if k not in shown_cols and v is not None and v != "" and v != []
    ]
    video = row.get("video") or None
    return ShownRow(
        config=config,
        split=split,
        position=position,
        id=_cell_text(row.get("id")),
        label=_cell_text(row.get("label")),
        video=video,
        video_exists=bool(video) and (build / video).is_file(),
        fields=fields,
        options=options,
        provenance=_provenance_fields(row, clips, videos),
        extra=extra,
    )


def _turns(messages: list[dict]) -> str:
    """A conversation as `role: text` lines, a video part as `[video PATH]`."""
    lines = []
    for turn in messages:
        parts = []
        for part in turn.get("content") or []:
            if part.get("type") == "video":
                parts.append(f"[video {part.get('video')}]")
            elif part.get("text"):
                parts.append(part["text"])
        lines.append(f"{turn.get('role')}: " + " ".join(parts))
    return "\n".join(lines)


def _provenance_fields(
    row: Mapping[str, Any], clips: Mapping[str, dict], videos: Mapping[str, dict]
) -> list[Field]:
    """Where the row came from: the clip and its source video's window, what made it."""
    out = []
    if row.get("video"):
        out.append(Field("clip", str(row["video"])))
    vid = row.get("video_id")
    if vid:
        text = f"video {vid}"
        v = videos.get(vid)
        if v:
            # The file's name only: the path is the user's machine's, not the dataset's.
            text += f" ({Path(str(v['path'])).name}, {v.get('source') or 'no source'})"
        c = clips.get(row.get("clip_id") or "")
        if c:
            text += f", window {c['start']:.2f}-{c['end']:.2f} s"
            if v and v.get("duration"):
                text += f" of {v['duration']:.2f} s"
            if c.get("event_offset") is not None:
                text += f", event at {c['event_offset']:.2f} s into the clip"
        out.append(Field("source", text))
    made = ", ".join(
        f"{k} {row[k]}" for k in ("generator", "template") if row.get(k) not in (None, "")
    )
    if made:
        out.append(Field("made by", made))
    return out


def add_show_parser(sub: argparse._SubParsersAction) -> None:
    """`autodrive show BUILD CONFIG [--split S] [-n N] [--where K=V]... [--html OUT]`."""
    s = sub.add_parser(
        "show",
        help="print a config's rows as a person reads them, or write them as a web page",
        description="Print rows of one config of a build folder: the question, the options "
        "lettered with the answer marked, the answer or caption, the reasoning, the clip's "
        "path and where the row came from (source video, the window cut from it, the model "
        "or rule and template that wrote it). --where keeps rows whose column equals the "
        "value (repeatable: all must hold). --html OUT writes a static page instead, each "
        "row beside its playable clip, linked by paths relative to the page.",
    )
    s.add_argument("build", type=Path, metavar="BUILD", help="build folder")
    s.add_argument("config", metavar="CONFIG", help="e.g. mcq, reasoning_mcq, failures")
    s.add_argument("--split", help="train or test (default: both)")
    s.add_argument(
        "-n", type=int, default=DEFAULT_ROWS, help=f"rows to show (default {DEFAULT_ROWS}; 0 = all)"
    )
    s.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep rows whose column KEY equals VALUE, e.g. --where label=Collision",
    )
    s.add_argument("--html", type=Path, metavar="OUT", help="write an HTML page to OUT")
    s.set_defaults(func=cmd_show)


def cmd_show(args: argparse.Namespace) -> int:
    """Print the rows, or write the page; 0, or ValueError (exit 2) for bad arguments."""
    sel = select_rows(
        args.build, args.config, split=args.split, where=parse_where(args.where), limit=args.n
    )
    if args.html is None:
        from vlm_autodrive.builders.dataset.show_text import format_text

        print(format_text(sel))
        return 0
    from vlm_autodrive.builders.dataset.show_html import write_page

    missing = write_page(sel, args.html)
    print(sel.summary())
    rows = f"{len(sel.rows)} row" + ("" if len(sel.rows) == 1 else "s")
    print(f"wrote {args.html}: {rows} beside their clips; open it in a browser")
    if missing:
        print(f"  {missing} of the rows' clip files are missing from {args.build}")
    return 0
