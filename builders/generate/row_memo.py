"""Per-input reuse in the model splits: an input whose own inputs did not change keeps
the rows and failures it had, without rendering, keying, looking up or parsing again.

In: a split's key (`split_key`: the split's name, template, parser, word lists, its
settings, the model's identity and name, and the stage's code and taxonomy) and each
input's fields (`input_key`: every `ClipInput` field but the absolute video path, and,
for a split that attaches the video, the clip file's size and modification time). Out:
`BUILD/cache/rows.parquet`, one row per input of the last run: its input key, the
request it used, its label, its samples and kept samples, and the ids of its rows and
failures. The rows and failures themselves are read back from the config files the last
run wrote, at the Arrow level.

The memo is used only when it is the one the stage's stamp names and every output the
stamp records is intact (`open_memo`); else every input is a miss, as in a first build.
A hit gives exactly what parsing the same response again would give: the split key holds
everything a split reads besides the input (a parse or filter setting, the template, the
model, the code), so a warm run writes the bytes a cold one does (tests/builders/
generate/test_row_memo.py). Splits with `target:` rounds or the revision check are not
memoised (their inputs depend on the other samples).
"""

from __future__ import annotations

import hashlib
import operator
import os
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vlm_autodrive.builders.core.files import file_sha256, write_parquet
from vlm_autodrive.builders.core.stage import Counts, Stage, content_key
from vlm_autodrive.builders.dataset.folder import data_files
from vlm_autodrive.builders.generate.failures import CONFIG as FAILURES
from vlm_autodrive.builders.generate.failures import FailureRow
from vlm_autodrive.builders.generate.tasks.base import ClipInput

MEMO = Path("cache") / "rows.parquet"
SUMMARY_KEY = "row_memo"  # the stamp summary's record of the memo file's sha256
MEMO_SCHEMA = pa.schema(
    [
        ("config", pa.string()),
        ("input_key", pa.string()),
        ("request_key", pa.string()),
        ("label", pa.string()),
        ("samples", pa.int32()),
        ("kept", pa.int32()),
        ("row_ids", pa.list_(pa.string())),
        ("failure_ids", pa.list_(pa.string())),
    ]
)
# The input's fields that make its key: all but the absolute path (moving the build
# folder must not make every input a miss; `video` is the path inside the build).
_keyed_fields = operator.attrgetter(*(f.name for f in fields(ClipInput) if f.name != "video_path"))


@dataclass(slots=True)
class Outcome:
    """What one input of a split gave: a row of the memo file."""

    config: str
    input_key: str
    request_key: str  # "" when the prompt did not render
    label: str
    samples: int
    kept: int
    row_ids: list[str]
    failure_ids: list[str]


def split_key(**parts: Any) -> str:
    """The key of what a split reads besides its inputs (keyword parts, as JSON)."""
    return content_key(parts)


def input_keys(
    key_of_split: str, clips: list[ClipInput], needs_video: bool, texts: dict[int, tuple]
) -> list[str]:
    """The key of each input of a split (see the module). `texts`: the fields' text of
    inputs seen by an earlier split of the run (by `id`, the input kept beside it so
    that its id is not reused), as most splits read the same inputs."""
    out = []
    for clip in clips:
        seen = texts.get(id(clip))
        if seen is None:
            seen = texts[id(clip)] = (clip, repr(_keyed_fields(clip)).encode())
        h = hashlib.blake2b(key_of_split.encode(), digest_size=16)
        h.update(seen[1])
        if needs_video and not clip.video_sha256:
            try:
                st = os.stat(clip.video_path)
                h.update(f"\0{st.st_size}\0{st.st_mtime_ns}".encode())
            except OSError:
                h.update(b"\0missing")
        out.append(h.hexdigest())
    return out


@dataclass
class Reused:
    """What a split takes from the last run for its unchanged inputs."""

    memo_rows: pa.Table  # their rows of the memo file
    rows: pa.Table  # their rows, from the config's files
    fails: list[FailureRow]  # their failures, from the failures config
    request_keys: set[str]  # the requests they used
    by_class: dict[str, list[int]]  # label -> [samples, kept]

    @property
    def inputs(self) -> int:
        return self.memo_rows.num_rows


@dataclass
class RowMemo:
    """The last run's memo file (as a table) and this run's outcomes, to write."""

    build_dir: Path
    old: pa.Table | None = None
    new: list[pa.Table] = field(default_factory=list)
    _tables: dict[str, pa.Table] = field(default_factory=dict)  # the old file by config
    _positions: dict[str, dict[str, int]] = field(default_factory=dict)  # key -> its row
    _failures: pa.Table | None = None

    def reuse(
        self, config: str, keys: list[str], schema: pa.Schema
    ) -> tuple[list[int], Reused] | None:
        """(the indices in `keys` the last run holds, what they reuse), or None when none
        is held or one's rows or failures are not in the last run's files (then every
        input is built again)."""
        if self.old is None:
            return None
        if config not in self._positions:
            mine = self.old.filter(pc.equal(self.old["config"], config))
            self._tables[config] = mine
            self._positions[config] = {k: i for i, k in enumerate(mine["input_key"].to_pylist())}
        where = self._positions[config]
        found = [(i, where[k]) for i, k in enumerate(keys) if k in where]
        if not found:
            return None
        sub = self._tables[config].take(pa.array([p for _, p in found], pa.int64()))
        rows = self._rows(config, sub, schema)
        fails = self._failed(config, sub) if rows is not None else None
        if rows is None or fails is None:
            return None
        counts = sub.group_by("label").aggregate([("samples", "sum"), ("kept", "sum")])
        by_class = {
            label: [int(n), int(k)]
            for label, n, k in zip(
                counts["label"].to_pylist(),
                counts["samples_sum"].to_pylist(),
                counts["kept_sum"].to_pylist(),
                strict=True,
            )
        }
        requests = set(pc.unique(sub["request_key"]).to_pylist()) - {""}
        return [i for i, _ in found], Reused(sub, rows, fails, requests, by_class)

    def _rows(self, config: str, sub: pa.Table, schema: pa.Schema) -> pa.Table | None:
        want = pc.list_flatten(sub["row_ids"])
        if len(want) == 0:
            return schema.empty_table()
        files = data_files(self.build_dir, config)
        if not files:
            return None
        table = pa.concat_tables(
            [pq.read_table(self.build_dir / rel, schema=schema) for _, rel in sorted(files.items())]
        )
        taken = table.filter(pc.is_in(table["id"], value_set=want))
        return taken if taken.num_rows == len(want) else None

    def _failed(self, config: str, sub: pa.Table) -> list[FailureRow] | None:
        want = pc.list_flatten(sub["failure_ids"])
        if len(want) == 0:
            return []
        if self._failures is None:
            files = data_files(self.build_dir, FAILURES)
            tables = [pq.read_table(self.build_dir / rel) for _, rel in sorted(files.items())]
            self._failures = pa.concat_tables(tables) if tables else None
        if self._failures is None:
            return None
        t = self._failures
        mask = pc.and_(pc.equal(t["config"], config), pc.is_in(t["id"], value_set=want))
        got = [FailureRow(**d) for d in t.filter(mask).to_pylist()]
        return got if len(got) == len(want) else None

    def record(self, reused: Reused | None, outcomes: list[Outcome]) -> None:
        """This run's outcomes of a split: the reused ones and the new ones."""
        if reused is not None:
            self.new.append(reused.memo_rows)
        if outcomes:
            columns = {f.name: [getattr(o, f.name) for o in outcomes] for f in fields(Outcome)}
            self.new.append(pa.Table.from_pydict(columns, schema=MEMO_SCHEMA))

    def write(self) -> str:
        """Write this run's outcomes, sorted (the file does not depend on which inputs
        were reused); the file's sha256 (for the stage's stamp)."""
        path = self.build_dir / MEMO
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.concat_tables([MEMO_SCHEMA.empty_table(), *self.new])
        table = table.sort_by([("config", "ascending"), ("input_key", "ascending")])
        write_parquet(table.combine_chunks(), path)
        return file_sha256(path)


def open_memo(build_dir: Path, stage: str) -> RowMemo:
    """The memo of the last run when its stamp names it and its outputs are intact; an
    empty memo otherwise (every input a miss)."""
    memo = RowMemo(Path(build_dir))
    path = memo.build_dir / MEMO
    recorded = (Stage(memo.build_dir, stage).intact_summary() or {}).get(SUMMARY_KEY)
    if recorded and path.is_file() and file_sha256(path) == recorded:
        memo.old = pq.read_table(path, schema=MEMO_SCHEMA)
    return memo


def reuse_inputs(memo: RowMemo, split, key_of_split: str, sgen, clips: list[ClipInput], texts):
    """(the inputs to build, what is reused or None, {id(input): outcome in the making})
    of a memoised split: the inputs whose key the last run holds are reused."""
    video = split.needs_video and not sgen.import_file
    keys = input_keys(key_of_split, clips, video, texts)
    found = memo.reuse(split.name, keys, split.schema)
    hit, reused = found if found is not None else ([], None)
    todo = clips
    if hit:
        skip = set(hit)
        todo = [c for i, c in enumerate(clips) if i not in skip]
        keys = [k for i, k in enumerate(keys) if i not in skip]
    # id(input) -> [input key, request key, samples, kept, row ids, failure ids, label]
    outcomes = {id(c): [k, "", 0, 0, [], [], c.label] for c, k in zip(todo, keys, strict=True)}
    return todo, reused, outcomes


def merge_reused(report, table: pa.Table, fails: list, reused: Reused, keyed, dry_run: bool):
    """A split's rows (sorted by id) and failures with the reused ones, and its report
    (a SplitReport) counting them; the counts checked when not a dry run."""
    report.clips += reused.inputs
    more = reused.request_keys - set(keyed)
    report.requests += len(more)
    report.cached += len(more)
    for label, (n, kept) in reused.by_class.items():
        report.samples += n
        report.kept += kept
        counts = report.by_class.setdefault(label, [0, 0])
        counts[0] += n
        counts[1] += kept
    report.by_class = dict(sorted(report.by_class.items()))
    fails = reused.fails + fails
    report.failed = dict(sorted(Counter(f.kind for f in fails).items()))
    table = pa.concat_tables([reused.rows, table]).sort_by("id")
    report.rows = table.num_rows
    if not dry_run:
        Counts(f"{report.name} samples", report.samples, report.kept, failures=len(fails)).check()
    return table, fails


def new_outcomes(config: str, outcomes: dict[int, list]) -> list[Outcome]:
    """The memo rows of the inputs built now (those with a prompt: the others made nothing)."""
    return [
        Outcome(config, k, req, label, n, kept, rows, failed)
        for k, req, n, kept, rows, failed, label in outcomes.values()
        if n
    ]
