"""Mixture row ids and content hashes (builders/mix/ids.py): computed by hand for a row,
unique, stable, a non-hex source id hashed row by row, duplicates in a side refused."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.builders.small_builds import read, recipe, small_build
from vlm_autodrive.builders.dataset.folder import data_path, register_config, write_data_file
from vlm_autodrive.builders.dataset.rows import content_hash, row_id
from vlm_autodrive.builders.mix.ids import (
    hex_values,
    mixture_content_hash,
    mixture_content_hashes,
    mixture_row_id,
    mixture_row_ids,
)
from vlm_autodrive.builders.mix.recipe import MixtureError
from vlm_autodrive.builders.mix.stage import mix


def by_hand(*parts: str) -> int:
    return int(hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest(), 16)


def test_a_row_id_is_the_source_id_xor_the_mask_of_config_and_copy():
    source = row_id("mcq", "clip-7")  # 16 hex digits, as every built config's ids
    want = int(source, 16) ^ by_hand("row", "mix-bal", "3")
    assert mixture_row_id("mix-bal", source, 3) == f"{want:016x}"
    fmt = "driving_assistant:abc:False"
    want = int(source, 16) ^ by_hand("content", fmt)
    assert mixture_content_hash(source, fmt) == f"{want:016x}"
    # the batch form gives what the one-row form gives, row by row
    ids = [row_id("mcq", f"clip-{i}") for i in range(50)]
    copies = np.arange(50) % 4
    batch = mixture_row_ids("mix-bal", pa.array(ids), copies).to_pylist()
    assert batch == [mixture_row_id("mix-bal", s, int(c)) for s, c in zip(ids, copies)]
    assert mixture_content_hashes(pa.array(ids), fmt).to_pylist() == [
        mixture_content_hash(s, fmt) for s in ids
    ]


def test_ids_are_unique_over_sources_and_copies_and_stable():
    sources = pa.array([row_id("vqa", f"clip-{i}", k) for i in range(20_000) for k in range(2)])
    copies = np.tile(np.arange(3), len(sources))
    repeated = sources.take(pa.array(np.repeat(np.arange(len(sources)), 3)))
    a = mixture_row_ids("mix-x", repeated, copies)
    assert len(set(a.to_pylist())) == len(a) == 120_000
    assert a.equals(mixture_row_ids("mix-x", repeated, copies))  # same inputs, same bytes
    assert not a.equals(mixture_row_ids("mix-y", repeated, copies))  # config is an input


@pytest.mark.parametrize(
    "odd",
    ["clip_001_q1", "ABCDEF0123456789", "0123456789abcdeg", "0123456789abcdef0", "é" * 8],
)
def test_a_source_id_that_is_not_16_lowercase_hex_digits_is_hashed_row_by_row(odd):
    """As every mixture id was before: such a config's mixture ids did not change."""
    good = row_id("mcq", "clip-1")
    got = mixture_row_ids("mix-m", pa.array([good, odd, good]), np.array([0, 1, 2])).to_pylist()
    assert got[1] == row_id("mix-m", odd, 1)  # hashed row by row, as before the XOR ids
    assert got[0] == mixture_row_id("mix-m", good, 0) and got[2] == mixture_row_id("mix-m", good, 2)
    assert hex_values(pa.array([odd]))[1].tolist() == [False]
    # a row's id depends on that row alone, not on whether its batch mates are hex
    assert mixture_row_id("mix-m", odd, 1) == got[1]
    assert mixture_content_hash(odd, "fmt") == content_hash(odd, "fmt")


def replace_ids(build, table: pa.Table, ids: pa.Array) -> None:
    """`caption_vlm`'s train rows with other ids (as a config made elsewhere might have)."""
    file = write_data_file(build, "caption_vlm", "train", table.set_column(0, "id", ids))
    register_config(
        build, "caption_vlm", files={"train": file}, description="ids made elsewhere",
        generator="import", template="none@000000000000", stage="import", stage_info={},
    )  # fmt: skip


def test_a_mixture_with_non_hex_source_ids_is_built_and_its_ids_are_unique(tmp_path):
    build = small_build(tmp_path)
    t = pq.read_table(data_path(build, "caption_vlm", "train"))
    replace_ids(build, t, pa.array([f"user-row-{i}" for i in range(t.num_rows)]))
    odd = "name: odd\ncomponents:\n  - config: caption_vlm\n    upsample: {'*': 2}\n"
    mix(recipe(tmp_path, odd), build)
    rows = read(build, "mix-odd").to_pylist()
    assert len(rows) == 2 * t.num_rows and len({r["id"] for r in rows}) == len(rows)
    r = rows[1]
    assert r["id"] == row_id("mix-odd", r["source_id"], r["copy"])


def test_a_side_with_duplicate_row_ids_is_refused_and_nothing_written(tmp_path):
    build = small_build(tmp_path)
    t = pq.read_table(data_path(build, "caption_vlm", "train"))
    same = t.column("id").to_pylist()
    same[1:6] = [same[0]] * 5  # six source rows under one id: 5 repeats
    replace_ids(build, t, pa.array(same))
    with pytest.raises(MixtureError, match=r"mix-twice \(train\): 5 of 60 mixture row ids repeat"):
        mix(
            recipe(tmp_path, "name: twice\ncomponents:\n  - config: caption_vlm\n    all: true\n"),
            build,
        )
    assert not list((build / "data").glob("mix-twice/*"))


def test_a_sliced_or_chunked_id_column_reads_the_same_values():
    ids = [row_id("mcq", f"clip-{i}") for i in range(30)]
    whole = mixture_row_ids("mix-s", pa.array(ids), np.zeros(30, int)).to_pylist()
    sliced = mixture_row_ids("mix-s", pa.array(ids).slice(7, 10), np.zeros(10, int))
    assert sliced.to_pylist() == whole[7:17]
    chunked = pa.chunked_array([pa.array(ids[:5]), pa.array(ids[5:])])
    assert mixture_row_ids("mix-s", chunked, np.zeros(30, int)).to_pylist() == whole
    with_null = pa.array([ids[0], None])
    assert hex_values(with_null)[1].tolist() == [True, False]
