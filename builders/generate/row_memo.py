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

Whole clips first: `BUILD/cache/inputs.parquet` holds each clip's fields as the last run
read them (and its file's size and modification time when a split attaches the video).
A clip whose fields are the same, in a split with one input per clip whose split key is
the last run's (recorded in the memo file's metadata), keeps every outcome it had, found
by one vectorised comparison: no key is computed for it. The other inputs are keyed one
by one as above. After `caption_vlm` the clips kept whole stay so only when that split
kept them whole too (later prompts read its captions).
"""

from __future__ import annotations

import hashlib
import json
import operator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vlm_autodrive.builders.core.files import file_sha256, write_parquet
from vlm_autodrive.builders.core.stage import Counts, Stage, content_key
from vlm_autodrive.builders.dataset.folder import data_files
from vlm_autodrive.builders.generate.clip_sources import ClipSources, file_state
from vlm_autodrive.builders.generate.failures import CONFIG as FAILURES
from vlm_autodrive.builders.generate.failures import (
    FAILURES_SCHEMA,
    failure_counts,
    failures_table,
)
from vlm_autodrive.builders.generate.tasks.base import ClipInput, ModelSplit

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
        ("clip_id", pa.string()),
    ]
)
# Per clip, the fields its inputs are made from (`input_snapshot`): a clip whose fields
# equal the last run's keeps, in a split whose key did not change, every outcome it had,
# found by one vectorised comparison instead of a key per input.
SNAPSHOT = Path("cache") / "inputs.parquet"
SNAPSHOT_KEY = "input_snapshot"  # the stamp summary's record of the snapshot's sha256
SNAPSHOT_SCHEMA = pa.schema([("clip_id", pa.string()), ("fingerprint", pa.binary())])
_SPLIT_KEYS = b"split_keys"  # the memo file's metadata: config -> the split key it was made with
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
    clip_id: str


def split_key(**parts: Any) -> str:
    """The key of what a split reads besides its inputs (keyword parts, as JSON)."""
    return content_key(parts)


def clip_fields(clip: ClipInput, texts: dict[int, tuple]) -> bytes:
    """The text of an input's keyed fields, memoised in `texts` by `id` (the input kept
    beside it so that its id is not reused), as most splits read the same inputs."""
    seen = texts.get(id(clip))
    if seen is None:
        seen = texts[id(clip)] = (clip, repr(_keyed_fields(clip)).encode())
    return seen[1]


def file_facts(clip: ClipInput) -> bytes:
    """What a split that attaches the video keys on besides the fields: the clip file's
    size and modification time (its sha256 when the dry run plans a clip not cut yet)."""
    if clip.video_sha256:
        return b""
    return b"\0" + file_state(clip.video_path).encode()


def input_keys(
    key_of_split: str, clips: list[ClipInput], needs_video: bool, texts: dict[int, tuple]
) -> list[str]:
    """The key of each input of a split (see the module); `texts` as in `clip_fields`."""
    out = []
    for clip in clips:
        h = hashlib.blake2b(key_of_split.encode(), digest_size=16)
        h.update(clip_fields(clip, texts))
        if needs_video:
            h.update(file_facts(clip))
        out.append(h.hexdigest())
    return out


@dataclass
class Reused:
    """What a split takes from the last run for its unchanged inputs."""

    memo_rows: pa.Table  # their rows of the memo file
    rows: pa.Table  # their rows, from the config's files
    fails: pa.Table  # their failures, from the failures config (FAILURES_SCHEMA)
    request_keys: pa.Array  # the requests they used, each once
    by_class: dict[str, list[int]]  # label -> [samples, kept]

    @property
    def inputs(self) -> int:
        return self.memo_rows.num_rows


@dataclass
class RowMemo:
    """The last run's memo file (as a table) and input snapshot, and this run's outcomes
    and snapshot, to write."""

    build_dir: Path
    old: pa.Table | None = None
    old_keys: dict[str, str] = field(default_factory=dict)  # config -> split key
    old_inputs: pa.Table | None = None  # SNAPSHOT_SCHEMA
    new: list[pa.Table] = field(default_factory=list)
    new_keys: dict[str, str] = field(default_factory=dict)
    new_inputs: pa.Table | None = None
    by_clip: set[str] = field(default_factory=set)  # configs that reused whole clips
    _tables: dict[str, pa.Table] = field(default_factory=dict)  # the old file by config
    _failures: pa.Table | None = None
    _others: tuple[set[str], pa.Array] | None = None  # reuse_clips: (kept clips, the others)

    def unchanged_clips(self, sources: ClipSources, file_states: dict[str, str] | None) -> set[str]:
        """Record this run's snapshot of the clips (`sources`, before any split adds to
        them; `file_states`: when a split attaches the video, the files' sizes and times
        as far as read, `clip_sources.clip_file_states`) and return the ids of the clips
        whose snapshot equals the last run's."""
        ids = sources.table["clip_id"].combine_chunks()
        prints = sources.fingerprints(file_states)
        self.new_inputs = pa.table([ids, prints], schema=SNAPSHOT_SCHEMA)
        if self.old_inputs is None or not len(sources):
            return set()
        old = self.old_inputs
        where = pc.index_in(ids, value_set=old["clip_id"])
        same = pc.equal(prints, old["fingerprint"].take(where)).fill_null(False)
        return set(ids.filter(same).to_pylist())

    def _config(self, config: str) -> pa.Table:
        if config not in self._tables:
            assert self.old is not None
            self._tables[config] = self.old.filter(pc.equal(self.old["config"], config))
        return self._tables[config]

    def reuse(
        self, config: str, keys: list[str], schema: pa.Schema
    ) -> tuple[list[int], Reused] | None:
        """(the indices in `keys` the last run holds, what they reuse), or None when none
        is held or one's rows or failures are not in the last run's files (then every
        input is built again)."""
        if self.old is None:
            return None
        mine = self._config(config)
        where = pc.index_in(pa.array(keys, pa.string()), value_set=mine["input_key"])
        hit = pc.indices_nonzero(pc.is_valid(where))
        if len(hit) == 0:
            return None
        reused = self._reused(config, mine.take(where.take(hit)), schema)
        return (hit.to_pylist(), reused) if reused is not None else None

    def reuse_clips(self, config: str, clip_ids: set[str], schema: pa.Schema) -> Reused | None:
        """What the inputs of `clip_ids` reuse when the split's key is the last run's
        (every outcome of those clips), or None: another key, or rows or failures not in
        the last run's files."""
        if self.old is None or self.old_keys.get(config) is None:
            return None
        mine = self._config(config)
        if self._others is None or self._others[0] is not clip_ids:
            # The last run's clips that are not kept: the few that changed or went.
            old = pc.unique(self.old["clip_id"])
            kept = pa.array(list(clip_ids), pa.string())
            self._others = (clip_ids, old.filter(pc.invert(pc.is_in(old, value_set=kept))))
        others = self._others[1]
        # The rows to leave out, by those clips (not the many rows kept): the files are
        # the last run's, as the stamp recorded them.
        keep = pc.invert(pc.is_in(mine["clip_id"], value_set=others))
        return self._reused(config, mine.filter(keep), schema, others)

    def _reused(
        self, config: str, sub: pa.Table, schema: pa.Schema, others: pa.Array | None = None
    ) -> Reused | None:
        rows = self._rows(config, sub, schema, others)
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
        requests = pc.unique(sub["request_key"])
        requests = requests.filter(pc.not_equal(requests, ""))
        return Reused(sub, rows, fails, requests, by_class)

    def _rows(
        self, config: str, sub: pa.Table, schema: pa.Schema, others: pa.Array | None
    ) -> pa.Table | None:
        """The rows `sub` (memo rows) made, from the config's files: those whose id it
        lists, or, given `others`, all but those of the clips `others` (the memo's other
        clips); None unless as many as it lists."""
        want = pc.list_flatten(sub["row_ids"])
        if len(want) == 0:
            return schema.empty_table()
        files = data_files(self.build_dir, config)
        if not files:
            return None
        table = pa.concat_tables(
            [pq.read_table(self.build_dir / rel, schema=schema) for _, rel in sorted(files.items())]
        )
        if others is None:
            taken = table.filter(pc.is_in(table["id"], value_set=want))
        elif len(others):
            taken = table.filter(pc.invert(pc.is_in(table["clip_id"], value_set=others)))
        else:
            taken = table
        return taken if taken.num_rows == len(want) else None

    def _failed(self, config: str, sub: pa.Table) -> pa.Table | None:
        want = pc.list_flatten(sub["failure_ids"])
        if len(want) == 0:
            return FAILURES_SCHEMA.empty_table()
        if self._failures is None:
            files = data_files(self.build_dir, FAILURES)
            tables = [pq.read_table(self.build_dir / rel) for _, rel in sorted(files.items())]
            self._failures = pa.concat_tables(tables) if tables else None
        if self._failures is None:
            return None
        t = self._failures
        mask = pc.and_(pc.equal(t["config"], config), pc.is_in(t["id"], value_set=want))
        taken = t.filter(mask)
        if taken.num_rows != len(want):
            return None
        return pa.Table.from_arrays(
            [taken[n] for n in FAILURES_SCHEMA.names], schema=FAILURES_SCHEMA
        )

    def record(
        self, config: str, key_of_split: str, reused: Reused | None, outcomes: list[Outcome]
    ) -> None:
        """This run's outcomes of a split (made with `key_of_split`): the reused ones and
        the new ones."""
        self.new_keys[config] = key_of_split
        if reused is not None:
            self.new.append(reused.memo_rows)
        if outcomes:
            columns = {f.name: [getattr(o, f.name) for o in outcomes] for f in fields(Outcome)}
            self.new.append(pa.Table.from_pydict(columns, schema=MEMO_SCHEMA))

    def write(self) -> dict[str, str]:
        """Write this run's outcomes, sorted (the file does not depend on which inputs
        were reused), and its snapshot; their sha256 by summary key (for the stamp)."""
        path = self.build_dir / MEMO
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.concat_tables([MEMO_SCHEMA.empty_table(), *self.new])
        table = table.sort_by([("config", "ascending"), ("input_key", "ascending")])
        keys = json.dumps(dict(sorted(self.new_keys.items()))).encode()
        write_parquet(table.combine_chunks().replace_schema_metadata({_SPLIT_KEYS: keys}), path)
        out = {SUMMARY_KEY: file_sha256(path)}
        if self.new_inputs is not None:
            write_parquet(self.new_inputs, self.build_dir / SNAPSHOT)
            out[SNAPSHOT_KEY] = file_sha256(self.build_dir / SNAPSHOT)
        return out


def open_memo(build_dir: Path, stage: str) -> RowMemo:
    """The memo (and input snapshot) of the last run when its stamp names their sha256 and
    its outputs are intact; an empty memo otherwise (every input a miss)."""
    memo = RowMemo(Path(build_dir))
    summary = Stage(memo.build_dir, stage).intact_summary() or {}
    old = _read_recorded(memo.build_dir / MEMO, summary.get(SUMMARY_KEY), MEMO_SCHEMA)
    if old is None:
        return memo
    memo.old = old
    meta = (old.schema.metadata or {}).get(_SPLIT_KEYS)
    memo.old_keys = json.loads(meta) if meta else {}
    snapshot = memo.build_dir / SNAPSHOT
    memo.old_inputs = _read_recorded(snapshot, summary.get(SNAPSHOT_KEY), SNAPSHOT_SCHEMA)
    return memo


def _read_recorded(path: Path, recorded: str | None, schema: pa.Schema) -> pa.Table | None:
    """The table at `path` when its sha256 is `recorded` and it has `schema`; else None."""
    if not recorded or not path.is_file() or file_sha256(path) != recorded:
        return None
    table = pq.read_table(path)
    if not table.schema.remove_metadata().equals(schema):
        return None  # written by an older version of this module
    return table


def reuse_whole_clips(
    memo: RowMemo | None, split, key_of_split: str, unchanged: set[str] | None
) -> Reused | None:
    """What the `unchanged` clips (whose snapshot equals the last run's,
    `RowMemo.unchanged_clips`) reuse whole in a split with one input per clip and the last
    run's key: every outcome they had; None when that does not hold (their inputs are then
    built and keyed one by one)."""
    if memo is None or not unchanged or not one_input_per_clip(split):
        return None
    if memo.old_keys.get(split.name) != key_of_split:
        return None
    reused = memo.reuse_clips(split.name, unchanged, split.schema)
    if reused is not None:
        memo.by_clip.add(split.name)
    return reused


def reuse_inputs(
    memo: RowMemo,
    split,
    key_of_split: str,
    sgen,
    clips: list[ClipInput],
    texts,
    whole: Reused | None = None,
):
    """(the inputs to build, what is reused or None, {id(input): outcome in the making})
    of a memoised split. `whole`: what the clips kept whole reuse (`reuse_whole_clips`;
    `clips` then holds only the others); otherwise the inputs whose key the last run holds
    are reused."""
    video = attaches_video(split, sgen)
    reused = whole
    keys = input_keys(key_of_split, clips, video, texts)
    if reused is None:
        found = memo.reuse(split.name, keys, split.schema)
        if found is not None:
            hit, reused = found
            skip = set(hit)
            clips = [c for i, c in enumerate(clips) if i not in skip]
            keys = [k for i, k in enumerate(keys) if i not in skip]
    # id(input) -> [input key, request key, samples, kept, row ids, failure ids, label, clip]
    outcomes = {
        id(c): [k, "", 0, 0, [], [], c.label, c.clip_id] for c, k in zip(clips, keys, strict=True)
    }
    return clips, reused, outcomes


def attaches_video(split, sgen) -> bool:
    """Whether the split's requests attach the clip (its inputs then key on the file)."""
    return split.needs_video and not sgen.import_file


def one_input_per_clip(split) -> bool:
    """Whether the split's inputs are its clips (the default `expand`), so that a clip
    whose fields did not change has the same inputs; reasoning_revised's are failures."""
    return type(split).expand is ModelSplit.expand


def merge_reused(report, table: pa.Table, fails: list, reused: Reused, keyed, dry_run: bool):
    """A split's rows and failures (tables sorted by id) with the reused ones, and its
    report (a SplitReport) counting them; the counts checked when not a dry run."""
    report.clips += reused.inputs
    built = pa.array(list(keyed), pa.string())
    more = len(reused.request_keys) - (pc.sum(pc.is_in(reused.request_keys, built)).as_py() or 0)
    report.requests += more
    report.cached += more
    for label, (n, kept) in reused.by_class.items():
        report.samples += n
        report.kept += kept
        counts = report.by_class.setdefault(label, [0, 0])
        counts[0] += n
        counts[1] += kept
    report.by_class = dict(sorted(report.by_class.items()))
    fails = pa.concat_tables([reused.fails, failures_table(fails)]).sort_by("id")
    report.failed = failure_counts(fails)
    table = pa.concat_tables([reused.rows, table]).sort_by("id")
    report.rows = table.num_rows
    if not dry_run:
        Counts(
            f"{report.name} samples", report.samples, report.kept, failures=fails.num_rows
        ).check()
    return table, fails


def new_outcomes(config: str, outcomes: dict[int, list]) -> list[Outcome]:
    """The memo rows of the inputs built now (those with a prompt: the others made nothing)."""
    return [
        Outcome(config, k, req, label, n, kept, rows, failed, clip)
        for k, req, n, kept, rows, failed, label, clip in outcomes.values()
        if n
    ]
