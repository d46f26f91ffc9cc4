"""What the model splits read, per clip, as one Arrow table: made into `ClipInput`s only
for the clips a split must build.

In: the clip table (`clip_id`, `video_id`, `label`, `path`), each clip's side, the rows
of the rule configs (`caption_metadata`'s answer, `mcq`'s and `cause_vqa`'s question,
options and answer letter), the ingested videos (for `facts`) and, for clips the dry run
plans before they are cut, their file hashes. Out: `ClipSources`, one row per train/test
clip sorted by clip id, whose columns are the `ClipInput` fields (the facts as the text
of what they are made from: the video's metadata and whether it has an event).

Why a table: a one-video edit at 10,000 videos keeps all but a handful of clips whole
(row_memo.py); comparing their columns with the last run's is one vectorised pass, where
building 50,000 `ClipInput`s to compare them cost more than the rest of the stage.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.generate.tasks.base import ClipInput, with_vlm_caption

_QUESTION = ("question", "options", "answer_letter")
# The columns that make a clip's fingerprint, in order (all but the clip id, its key).
_FINGERPRINTED = (
    "video_id", "label", "split", "video", "caption", "mcq_question", "mcq_options",
    "mcq_answer_letter", "video_sha256", "cause_question", "cause_options",
    "cause_answer_letter", "facts_source",
)  # fmt: skip


@dataclass
class ClipSources:
    """The train/test clips of a build with everything their inputs are made from."""

    build_dir: Path
    table: pa.Table  # clip_id + _FINGERPRINTED, sorted by clip id
    facts: Callable[[str, str], dict[str, tuple[str, ...]]] | None

    def __len__(self) -> int:
        return self.table.num_rows

    def inputs(
        self, skip: Iterable[str] = (), vlm: dict[str, str | None] | None = None
    ) -> list[ClipInput]:
        """The clips as `ClipInput`s, sorted by clip id, but those in `skip`; `vlm`:
        clip id -> its VLM caption (after `caption_vlm`)."""
        table = self.table
        skip = sorted(skip)
        if skip:
            table = table.filter(pc.invert(pc.is_in(table["clip_id"], pa.array(skip, pa.string()))))
        # The folder resolved once: clip paths are plain files inside it.
        root = str(Path(self.build_dir).resolve())
        vlm = vlm or {}
        cols = {n: table[n].to_pylist() for n in table.column_names if n != "facts_source"}
        out = []
        for i, clip_id in enumerate(cols["clip_id"]):
            video_id, label = cols["video_id"][i], cols["label"][i]
            out.append(
                ClipInput(
                    clip_id=clip_id,
                    video_id=video_id,
                    label=label,
                    split=cols["split"][i],
                    video=cols["video"][i],
                    video_path=os.path.join(root, cols["video"][i]),
                    caption=cols["caption"][i],
                    vlm_caption=vlm.get(clip_id),
                    mcq_question=cols["mcq_question"][i],
                    mcq_options=tuple(cols["mcq_options"][i] or ()),
                    mcq_answer_letter=cols["mcq_answer_letter"][i],
                    video_sha256=cols["video_sha256"][i],
                    facts=self.facts(video_id, label) if self.facts else {},
                    cause_question=cols["cause_question"][i],
                    cause_options=tuple(cols["cause_options"][i] or ()),
                    cause_answer_letter=cols["cause_answer_letter"][i],
                )
            )
        return out

    def fingerprints(self, file_states: dict[str, str] | None) -> pa.Array:
        """Per clip, one binary value that differs whenever any input field differs (each
        value prefixed with its length, so that no two different clips give the same
        bytes); with `file_states` (`clip_file_states`: a split attaches the video), also
        the clip file's size and modification time (a planned hash stands for a file not
        cut yet)."""
        parts = [_text(self.table[name].combine_chunks()) for name in _FINGERPRINTED]
        if file_states is not None:
            sha = self.table["video_sha256"].to_pylist()
            paths = self.table["video"].to_pylist()
            root = str(self.build_dir)
            states = [
                f"sha:{s}" if s else file_states.get(p) or file_state(os.path.join(root, p))
                for p, s in zip(paths, sha, strict=True)
            ]
            parts.append(_text(pa.array(states, pa.string())))
        return pc.binary_join_element_wise(*parts, "").cast(pa.binary())


def _text(column: pa.Array) -> pa.Array:
    """A column as text, each value prefixed by its length and a colon (`-` for null); a
    list as its length and its items so prefixed: injective, without escaping."""
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        items = _text(pc.list_flatten(column).cast(pa.string()))
        lists = type(column).from_arrays(column.offsets, items, mask=column.is_null())
        joined = pc.binary_join(lists, "")
        length = pc.list_value_length(column).cast(pa.string())
        return pc.binary_join_element_wise(length, joined, "/").fill_null("-")
    column = column.cast(pa.string())
    length = pc.binary_length(column).cast(pa.string())
    return pc.binary_join_element_wise(length, column, ":").fill_null("-")


def clip_file_states(build_dir: Path, paths: Iterable[str]) -> dict[str, str]:
    """Each clip file's size and modification time (`missing` when absent), by its path
    inside the build folder: a clip re-cut or replaced at the same path changes it (the
    video requests key on the bytes; hashing them all would cost more than the rebuild it
    saves)."""
    root = str(build_dir)
    return {rel: file_state(os.path.join(root, rel)) for rel in paths}


def file_state(path) -> str:
    """A file's `size:mtime_ns`, or `missing`."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def clip_sources(
    build_dir: Path,
    clips: pa.Table,
    sides: dict[str, str],
    rule_tables: dict[str, pa.Table],
    videos: pa.Table | None,
    taxonomy: Taxonomy | None,
    hashes: dict[str, str] | None = None,
) -> ClipSources:
    """The train/test clips of `clips` (the clip table's `clip_id`, `video_id`, `label`,
    `path`) with their sides (clip id -> side; others are left out), the texts of the
    rule configs in `rule_tables` (config -> table with `clip_id` and its columns),
    `videos` (`video_id`, `event_time`, `metadata`) for the facts when the taxonomy is
    given, and `hashes` (clip id -> planned file hash) for clips not cut yet."""
    ids, side = zip(*sorted((c, s) for c, s in sides.items() if s != "held_out")) or ((), ())
    chosen = pa.table({"clip_id": pa.array(ids, pa.string()), "split": pa.array(side, pa.string())})
    where = pc.index_in(clips["clip_id"], value_set=chosen["clip_id"])
    table = clips.filter(pc.is_valid(where)).sort_by("clip_id")
    clip_ids = table["clip_id"]
    cols: dict[str, Any] = {
        "clip_id": clip_ids,
        "video_id": table["video_id"],
        "label": table["label"],
        "split": chosen["split"].take(pc.index_in(clip_ids, value_set=chosen["clip_id"])),
        "video": table["path"],
        "caption": _lookup(rule_tables.get("caption_metadata"), clip_ids, "answer", pa.string()),
    }
    for prefix, config in (("mcq", "mcq"), ("cause", "cause_vqa")):
        for name in _QUESTION:
            kind = pa.list_(pa.string()) if name == "options" else pa.string()
            cols[f"{prefix}_{name}"] = _lookup(rule_tables.get(config), clip_ids, name, kind)
    planned = [(hashes or {}).get(c) for c in clip_ids.to_pylist()] if hashes else None
    cols["video_sha256"] = pa.array(planned or [None] * len(clip_ids), pa.string())
    facts = None
    if taxonomy is not None and videos is not None:
        facts, by_video = video_facts(videos, taxonomy)
        video_ids = table["video_id"]
        cols["facts_source"] = _lookup(by_video, video_ids, "source", pa.string(), "video_id")
    else:
        cols["facts_source"] = pa.nulls(len(clip_ids), pa.string())
    return ClipSources(Path(build_dir), pa.table(cols), facts)


def _lookup(table: pa.Table | None, ids, column: str, kind: pa.DataType, key: str = "clip_id"):
    """`table[column]` for each of `ids`, found in the table's `key` column (the first
    row that has it; null where none has)."""
    if table is None or table.num_rows == 0:
        return pa.nulls(len(ids), kind)
    return table[column].take(pc.index_in(ids, value_set=table[key])).cast(kind)


def video_facts(videos: pa.Table, taxonomy: Taxonomy):
    """(function (video id, clip label) -> the clip's facts, table of `video_id` and
    `source`: the text the facts are made from, per video), from the ingested videos
    (`video_id`, `event_time`, `metadata`). The facts are made on first use, per video."""
    from vlm_autodrive.builders.generate.facts import clip_facts
    from vlm_autodrive.builders.rules.captions import MetadataNormalizer

    normalizer = MetadataNormalizer(taxonomy)
    rows = {
        v: (m, t is not None)
        for v, m, t in zip(
            videos["video_id"].to_pylist(),
            videos["metadata"].to_pylist(),
            videos["event_time"].to_pylist(),
            strict=True,
        )
    }
    source = pa.table(
        {
            "video_id": pa.array(list(rows), pa.string()),
            "source": pa.array([repr(r) for r in rows.values()], pa.string()),
        }
    )
    made: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}  # the clips of a video share them

    def facts(video_id: str, label: str) -> dict[str, tuple[str, ...]]:
        if video_id not in rows:
            return {}
        if (video_id, label) not in made:
            metadata, has_event = rows[video_id]
            inputs = normalizer.video_inputs(metadata)
            made[video_id, label] = clip_facts(inputs, label, has_event, taxonomy)
        return made[video_id, label]

    return facts, source


class InputPools:
    """The clips of a run as `ClipInput`s, made when a split needs them: all of them
    (made once, and given the VLM captions once `caption_vlm` is built) or all but the
    clips a split keeps whole (made for that split)."""

    def __init__(self, sources: ClipSources) -> None:
        self.sources = sources
        self.vlm: dict[str, str | None] | None = None
        self._all: list[ClipInput] | None = None

    def all(self) -> list[ClipInput]:
        if self._all is None:
            self._all = self.sources.inputs(vlm=self.vlm)
        return self._all

    def some(self, skip: set[str] | None) -> list[ClipInput]:
        """All clips but `skip`: from the full list when it is made, else made now."""
        if not skip:
            return self.all()
        if self._all is not None:
            return [c for c in self._all if c.clip_id not in skip]
        return self.sources.inputs(skip=skip, vlm=self.vlm)

    def add_vlm_captions(self, vlm: dict[str, str | None]) -> None:
        """Give every clip its VLM caption (clip id -> caption; others get None)."""
        self.vlm = vlm
        if self._all is not None:
            self._all = [with_vlm_caption(c, vlm.get(c.clip_id)) for c in self._all]
