"""The mixture's bytes are pinned: the same build, recipe and seed give the rows, row groups
and (under the pyarrow these pins were taken with) the file bytes that the mixer has
always written. A faster mixer must not change what a user downloads or a changelog sees.

Small batches (BATCH_ROWS 7) give many row groups and batches with no row drawn, so the
pins also cover where row groups end. Re-pin only for an intended change of the format.
Re-pinned once (2026-12-06) when mixture row ids and content hashes became the source's
XOR a mask (builders/mix/ids.py): every other column and every row group was first checked
unchanged against the old pins, with the old ids put back. The file bytes (not the rows)
re-pinned again when ids, source ids and content hashes were written without a dictionary.
"""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq

from tests.builders.small_builds import recipe, small_build
from vlm_autodrive.builders.dataset.folder import data_path, register_config, write_data_file
from vlm_autodrive.builders.mix import batches
from vlm_autodrive.builders.mix.stage import mix

# Every amount, both sides, a class left out (factor 0), reasoning rows in both forms.
ALL_PATHS = """
    name: pin
    seed: 3
    splits: [train, test]
    components:
      - config: mcq
        upsample: {Collision: 3, Near-Collision: 0}
      - config: caption_vlm
        count: 9
      - config: caption_metadata
        fraction: 0.5
      - config: reasoning_mcq
        upsample: {"*": 2}
      - config: reasoning_vqa
        fraction: 0.6
"""
NO_SYSTEM = """
    name: plain
    conversation: {system_prompt: null, reasoning: false}
    components:
      - config: reasoning_mcq
        all: true
      - config: reasoning_vqa
        all: true
        reasoning: true
      - config: mcq
        fraction: 0.3
"""
SIZES = {
    "mcq": {"Collision": 4, "Near-Collision": 10, "Normal Driving": 50},
    "caption_metadata": {"Collision": 3, "Near-Collision": 7, "Normal Driving": 20},
    "caption_vlm": {"Collision": 5, "Near-Collision": 15, "Normal Driving": 40},
    "reasoning_mcq": {"Collision": 2, "Near-Collision": 6, "Normal Driving": 12},
    "reasoning_vqa": {"Collision": 3, "Near-Collision": 1, "Normal Driving": 5},
}
# (mixture, side) -> (row groups' sizes, sha256 of the rows as JSON, of the file's bytes)
PINNED = {
    ("pin", "train"): (
        [12, 7, 7, 7, 7, 7, 7, 7, 1, 2, 2, 1, 1, 1, 2, 2, 4, 5, 2, 2, 14, 14, 12, 4, 1],
        "c9a3fcdd18ce44456d6957f4cada94f702ffd1499f1e0c1d44c45946e8b4ddc8",
        "02f98482a66e5d4f8f0b5794848dca1ccb421c6401acd95aa9ba6db7e875e307",
    ),
    ("pin", "test"): (
        [10, 2, 7, 2, 4, 1, 14, 4, 3, 2],
        "f4bfdd7712a55cb95129d592923ec123634d85b5192be30553501ae38e48fbcf",
        "43a07531736651ddfbe4684cc8061e1a00bbec64c8766cb8075badf577e57cd5",
    ),
    ("plain", "train"): (
        [7, 7, 6, 7, 2, 4, 1, 4, 1, 2, 2, 2, 3],
        "f62ec1ce355666a129921f61998ebb414d11e182988d3bb106c7378858be5637",
        "05dfd80de70951f1fba6c26c8845af06655ba8d04f8ad99899f904a2b03e56d6",
    ),
}
PINNED_UNDER_PYARROW = "26."


def rows_sha256(table: pa.Table) -> str:
    text = json.dumps(table.to_pylist(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def without_target_and_hash(build, config: str) -> None:
    """Drop `target` and `content_hash` from a reasoning config: its assistant text is
    composed from `reasoning` and `answer`, its content hash from question and answer."""
    files = {}
    for side in ("train", "test"):
        t = pq.read_table(data_path(build, config, side))
        files[side] = write_data_file(
            build, config, side, t.drop_columns(["target", "content_hash"])
        )
    register_config(
        build, config, files=files, description="reasoning without target",
        generator="synthetic", template=f"{config}.jinja@000000000000", stage="synthetic",
        stage_info={},
    )  # fmt: skip


def written(build, name: str, side: str) -> tuple[list[int], str, str]:
    path = data_path(build, f"mix-{name}", side)
    meta = pq.ParquetFile(path).metadata
    groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    file_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return groups, rows_sha256(pq.read_table(path)), file_sha


def test_the_mixture_rows_row_groups_and_bytes_are_pinned(tmp_path, monkeypatch):
    monkeypatch.setattr(batches, "BATCH_ROWS", 7)
    build = small_build(tmp_path, SIZES)
    without_target_and_hash(build, "reasoning_vqa")
    mix(recipe(tmp_path, ALL_PATHS, "pin.yaml"), build)
    mix(recipe(tmp_path, NO_SYSTEM, "plain.yaml"), build)
    got = {key: written(build, *key) for key in PINNED}
    # rows and row groups: the same under any pyarrow
    assert {k: v[:2] for k, v in got.items()} == {k: v[:2] for k, v in PINNED.items()}
    # the bytes also carry the writer's version and encodings: pinned under one pyarrow
    if pa.__version__.startswith(PINNED_UNDER_PYARROW):
        assert {k: v[2] for k, v in got.items()} == {k: v[2] for k, v in PINNED.items()}


def test_distinct_valued_columns_are_written_plain_the_others_with_a_dictionary(tmp_path):
    build = small_build(tmp_path, SIZES)
    mix(recipe(tmp_path, ALL_PATHS, "pin.yaml"), build)
    group = pq.ParquetFile(data_path(build, "mix-pin", "train")).metadata.row_group(0)
    encodings = {
        group.column(i).path_in_schema: group.column(i).encodings for i in range(group.num_columns)
    }
    assert len(encodings) == 14  # every leaf column, the nested `messages` ones included
    for path, used in encodings.items():
        plain = path in ("id", "source_id", "content_hash")
        assert ("RLE_DICTIONARY" in used) != plain, path
