"""The last rule-splits run's rows, kept per clip when nothing they are made from changed.

A clip's rows in every rule config are a function of its row of the clip table
(`clip_id`, `video_id`, `path`, `label`, `event_offset`), the columns of its video's row
that rows read (`event_time`, `metadata`: one digest), its side (train/test: the
assignment is global, so a relabel elsewhere can move it) and what the whole stage reads
besides (`scope`: its code and the taxonomy, the templates' sha256, the settings). The
snapshot `BUILD/cache/rule_rows.parquet` holds those inputs for every clip with a side,
and the caption renders each clip used (render_memo.py digests, carried over so the
render memo stays whole). A clip whose inputs equal its snapshot row keeps its rows of
the last run's data files (read with Arrow, filtered by clip id); only the other clips'
rows are computed. Each side's table is then sorted by clip id, as a build from scratch
makes it, so the files written are byte-identical (tests/builders/rules/test_row_reuse.py).

Trust, as the render memo's: the snapshot is read only when the stage's stamp summary
records its sha256 (`SUMMARY_KEY`), with the same scope, and every output the stamp
records is intact (the data files read among them); else every row is computed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

SNAPSHOT = Path("cache") / "rule_rows.parquet"
SUMMARY_KEY = "row_reuse"  # the stamp summary's record: snapshot sha256, scope, data files
SIDES = ("train", "test")
SNAPSHOT_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("video_id", pa.string()),
        ("path", pa.string()),
        ("label", pa.string()),
        ("event_offset", pa.float64()),
        ("side", pa.string()),
        ("video", pa.string()),  # digest of the video's row
        ("renders", pa.list_(pa.string())),  # render-memo digests the clip's caption used
    ]
)
_COMPARED = SNAPSHOT_SCHEMA.names[:-1]  # what a clip's rows are made from


def row_scope(render_scope: str, templates: Mapping[str, Any], settings: Mapping) -> str:
    """What every row reads besides its clip's inputs: `render_scope` (the stage's code
    and the taxonomy), each template's sha256 by config, and `settings` (the rules
    section without its paths: the templates count by content, the pinned assignment
    through the sides)."""
    from vlm_autodrive.builders.core.stage import content_key

    kept = {k: v for k, v in settings.items() if k not in ("templates", "pin_assignment")}
    return content_key(
        {
            "code": render_scope,
            "templates": {n: t.sha256 for n, t in sorted(templates.items())},
            "settings": kept,
        }
    )


class RowReuse:
    """The last run's snapshot and data files (read-only; none: compute every row), and
    after `select` this run's snapshot and which clips keep their rows."""

    def __init__(
        self,
        scope: str,
        old: pa.Table | None = None,
        files: Mapping[str, Mapping[str, Path]] | None = None,
    ):
        self.scope = scope
        self.old = old
        self.files = dict(files or {})
        self.inputs: pa.Table | None = None
        self.kept = pa.array([], pa.string())  # clip ids whose rows are the last run's
        self.computed = 0  # clips whose rows this run computed

    def select(
        self,
        clips: list[Mapping[str, Any]],
        videos: Mapping[str, Mapping[str, Any]],
        sides: Mapping[str, str],
    ) -> list[Mapping[str, Any]]:
        """The clips with a side whose rows must be computed (in `clips`' order): those
        whose inputs differ from the snapshot's, or all of them without one."""
        digests = {vid: _video_digest(v) for vid, v in videos.items()}
        sided = [c for c in clips if c["clip_id"] in sides]
        cols = {n: [c[n] for c in sided] for n in _COMPARED[:5]}
        cols["side"] = [sides[c["clip_id"]] for c in sided]
        cols["video"] = [digests[c["video_id"]] for c in sided]
        cols["renders"] = _empty_lists(len(sided))
        self.inputs = pa.table(cols, schema=SNAPSHOT_SCHEMA)
        if self.old is None:
            todo = sided
        else:
            same = pc.is_in(_row_keys(self.inputs), value_set=_row_keys(self.old))
            self.kept = self.inputs["clip_id"].filter(same).combine_chunks()
            keep = set(self.kept.to_pylist())
            todo = [c for c in sided if c["clip_id"] not in keep]
        self.computed = len(todo)
        return todo

    def tables(self, config: str, rows: pa.Table, schema: pa.Schema) -> dict[str, pa.Table]:
        """`config`'s tables by side: the kept clips' rows from the last run's file of
        that side and `rows` (this run's, any side), each side sorted by clip id."""
        import pyarrow.parquet as pq

        out = {}
        for side in SIDES:
            new = rows.filter(pc.equal(rows["split"], side))
            old = self.files.get(config, {}).get(side) if len(self.kept) else None
            if old is None:
                out[side] = new.sort_by("clip_id").combine_chunks()
                continue
            old = pq.read_table(old, schema=schema)  # sorted by clip id, as written
            keep = pc.is_in(old["clip_id"], value_set=self.kept)
            if not new.num_rows and pc.all(keep).as_py():
                out[side] = old.combine_chunks()
                continue
            both = pa.concat_tables([old, new])
            keep = pa.concat_arrays(
                [keep.combine_chunks(), pa.array([True] * new.num_rows, pa.bool_())]
            )
            order = pc.sort_indices(both["clip_id"])
            out[side] = both.take(order.filter(keep.take(order))).combine_chunks()
        return out

    def carry_renders(self, renders: Any, computed: Mapping[str, list[str]]) -> None:
        """Record the render digests of each clip (`computed`: this run's clips; the kept
        ones as the snapshot has them) and put the kept clips' texts in `renders`' used
        set, so the render memo written holds every caption the rows use."""
        assert self.inputs is not None, "select() first"
        new = self.inputs.filter(pc.invert(pc.is_in(self.inputs["clip_id"], value_set=self.kept)))
        ids = new["clip_id"].to_pylist()
        lists = pa.array([computed.get(i, []) for i in ids], pa.list_(pa.string()))
        parts = [new.set_column(7, "renders", lists)]
        if len(self.kept):  # their inputs equal the snapshot's rows: take those
            kept = self.old.filter(pc.is_in(self.old["clip_id"], value_set=self.kept))
            parts.append(kept)
            digests = pc.unique(pc.list_flatten(kept["renders"])).to_pylist()
            renders.used.update((d, renders.old[d]) for d in digests if d in renders.old)
        table = pa.concat_tables(parts)
        self.inputs = table.sort_by("clip_id").combine_chunks()

    def write(self, build_dir: Path, files: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
        """Write this run's snapshot; the stamp summary's record of it (its sha256, the
        scope, and `files`: each config's data files by side, relative to the build)."""
        from vlm_autodrive.builders.core.files import file_sha256, write_parquet

        assert self.inputs is not None, "select() first"
        path = Path(build_dir) / SNAPSHOT
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(self.inputs, path)
        return {"sha256": file_sha256(path), "scope": self.scope, "files": dict(files)}


def open_row_reuse(build_dir: Path, scope: str, last: Mapping[str, Any] | None) -> RowReuse:
    """The last run's rows when `last` (the stage's stamp summary, given only when every
    output it records is intact: `Stage.intact_summary()`) records this snapshot with the
    same scope; else a RowReuse that computes every row."""
    from vlm_autodrive.builders.core.files import file_sha256

    build_dir = Path(build_dir)
    record = (last or {}).get(SUMMARY_KEY) or {}
    path = build_dir / SNAPSHOT
    if record.get("scope") != scope or not path.is_file():
        return RowReuse(scope)
    if file_sha256(path) != record.get("sha256"):
        return RowReuse(scope)
    files = {c: {s: build_dir / rel for s, rel in f.items()} for c, f in record["files"].items()}
    if not all(f.is_file() for fs in files.values() for f in fs.values()):
        return RowReuse(scope)
    import pyarrow.parquet as pq

    return RowReuse(scope, pq.read_table(path, schema=SNAPSHOT_SCHEMA), files)


def _row_keys(table: pa.Table) -> pa.Array:
    """One string per row of the compared columns, joined by the unit separator; a null
    (an offset of a clip without event) is NUL, which no number, id or path is."""
    cols = [pc.cast(table[n], pa.string()).fill_null("\x00") for n in _COMPARED]
    return pc.binary_join_element_wise(*cols, "\x1f").combine_chunks()


def _empty_lists(n: int) -> pa.Array:
    """`n` empty lists of strings, without making `n` Python lists."""
    offsets = pa.array([0] * (n + 1), pa.int32())
    return pa.ListArray.from_arrays(offsets, pa.array([], pa.string()))


def _video_digest(video: Mapping[str, Any]) -> str:
    """The digest of what rows read of a video's row: `event_time` and `metadata` (its
    label, sha256 and signature decide sides only, which are compared as such). `repr`
    of these plain values (str, numbers, None, lists, dicts in the table's field order)
    says every value and is several times faster than canonical JSON."""
    text = repr((video.get("event_time"), video.get("metadata")))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
