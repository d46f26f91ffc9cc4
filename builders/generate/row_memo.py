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
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vlm_autodrive.builders.core.files import file_sha256, read_json, write_parquet
from vlm_autodrive.builders.core.stage import STAMP, content_key
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
_KEYED_FIELDS = tuple(f.name for f in fields(ClipInput) if f.name != "video_path")


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


def input_key(key_of_split: str, clip: ClipInput, needs_video: bool) -> str:
    """The key of one input of a split (see the module)."""
    text = repr(tuple(getattr(clip, f) for f in _KEYED_FIELDS))
    if needs_video and not clip.video_sha256:
        try:
            st = os.stat(clip.video_path)
            text += f"\0{st.st_size}\0{st.st_mtime_ns}"
        except OSError:
            text += "\0missing"
    return hashlib.blake2b(f"{key_of_split}\0{text}".encode(), digest_size=16).hexdigest()


@dataclass
class RowMemo:
    """The last run's outcomes by (config, input key), and this run's, to write."""

    build_dir: Path
    old: dict[tuple[str, str], Outcome] = field(default_factory=dict)
    new: list[Outcome] = field(default_factory=list)
    _failures: pa.Table | None = None

    def hits(self, config: str, keys: list[str]) -> dict[int, Outcome]:
        """Index in `keys` -> the last run's outcome, for the keys it holds."""
        if not self.old:
            return {}
        out = {}
        for i, k in enumerate(keys):
            o = self.old.get((config, k))
            if o is not None:
                out[i] = o
        return out

    def rows(self, config: str, hits: list[Outcome], schema: pa.Schema) -> pa.Table | None:
        """The rows of `hits` from the config's files; None when one is missing there
        (the caller then treats every input as new)."""
        want = [r for o in hits for r in o.row_ids]
        if not want:
            return schema.empty_table()
        files = data_files(self.build_dir, config)
        if not files:
            return None
        table = pa.concat_tables(
            [pq.read_table(self.build_dir / rel, schema=schema) for _, rel in sorted(files.items())]
        )
        taken = table.filter(pc.is_in(table["id"], value_set=pa.array(want, pa.string())))
        return taken if taken.num_rows == len(want) else None

    def failures(self, config: str, hits: list[Outcome]) -> list[FailureRow] | None:
        """The failure rows of `hits`; None when one is missing from the failures config."""
        want = {f for o in hits for f in o.failure_ids}
        if not want:
            return []
        if self._failures is None:
            files = data_files(self.build_dir, FAILURES)
            tables = [pq.read_table(self.build_dir / rel) for _, rel in sorted(files.items())]
            self._failures = pa.concat_tables(tables) if tables else None
        if self._failures is None:
            return None
        t = self._failures
        mask = pc.and_(
            pc.equal(t["config"], config), pc.is_in(t["id"], value_set=pa.array(sorted(want)))
        )
        got = [FailureRow(**d) for d in t.filter(mask).to_pylist()]
        return got if len(got) == len(want) else None

    def record(self, outcomes: list[Outcome]) -> None:
        self.new.extend(outcomes)

    def write(self) -> str:
        """Write this run's outcomes; their file's sha256 (for the stage's stamp)."""
        path = self.build_dir / MEMO
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = {f.name: [getattr(o, f.name) for o in self.new] for f in fields(Outcome)}
        write_parquet(pa.Table.from_pydict(columns, schema=MEMO_SCHEMA), path)
        return file_sha256(path)


def open_memo(build_dir: Path, stage: str) -> RowMemo:
    """The memo of the last run when its stamp names it and its outputs are intact; an
    empty memo otherwise (every input a miss)."""
    memo = RowMemo(Path(build_dir))
    path = memo.build_dir / MEMO
    try:
        stamp = read_json(memo.build_dir / stage / STAMP)
    except (OSError, ValueError):
        return memo
    recorded = (stamp.get("summary") or {}).get(SUMMARY_KEY)
    if not recorded or not path.is_file() or file_sha256(path) != recorded:
        return memo
    for rel, sha in stamp.get("outputs", {}).items():
        f = memo.build_dir / rel
        if not f.is_file() or file_sha256(f) != sha:
            return memo
    table = pq.read_table(path, schema=MEMO_SCHEMA)
    columns = [table[n].to_pylist() for n in MEMO_SCHEMA.names]
    memo.old = {(o.config, o.input_key): o for o in (Outcome(*vals) for vals in zip(*columns))}
    return memo
