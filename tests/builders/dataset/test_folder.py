"""The dataset folder: configs written by a later stage join the card; nothing is lost."""

from __future__ import annotations

import pyarrow as pa
import yaml

from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.dataset.folder import ConfigTables, data_path, write_dataset_folder
from vlm_autodrive.builders.rules.stage import RuleSplitsConfig, build_rule_splits
from vlm_autodrive.builders.synthetic.tables import write_synthetic_tables


def declared(build):
    header = yaml.safe_load((build / "README.md").read_text().split("---\n")[1])
    return {c["config_name"]: c for c in header["configs"]}


def test_a_later_stage_adds_a_config_and_a_rule_rebuild_keeps_it(tmp_path):
    build = tmp_path / "build"
    write_synthetic_tables(build, 60, seed=2, collision_fraction=0.3)
    config = RuleSplitsConfig(test_per_class=2)
    build_rule_splits(build, config, load_taxonomy(), {})
    table = pa.table({"id": ["a"], "label": ["Collision"], "question": ["q"], "answer": ["a"]})
    write_dataset_folder(
        build,
        [
            ConfigTables(
                "vqa", "Questions from captions.", "model:x@1", "vqa.jinja@0", {"train": table}
            )
        ],
        stage="model_splits",
        stage_info={"model": "x"},
        top={},
    )
    assert set(declared(build)) == {"mcq", "caption_metadata", "vqa"}
    assert [f["split"] for f in declared(build)["vqa"]["data_files"]] == ["train"]
    card = (build / "README.md").read_text()
    assert "| `vqa` | Questions from captions. | 1 | 0 |" in card
    build_rule_splits(build, config, load_taxonomy(), {}, force=True)
    assert set(declared(build)) == {"mcq", "caption_metadata", "vqa"}
    data_path(build, "vqa", "train").unlink()
    (build / "data" / "vqa").rmdir()
    build_rule_splits(build, config, load_taxonomy(), {}, force=True)
    assert set(declared(build)) == {"mcq", "caption_metadata"}


def test_a_config_without_rows_keeps_its_schema_and_is_listed_not_declared(tmp_path):
    """The demo's `vqa` can end with no row: its files are zero-row Parquet files with the
    schema, and the card lists it in its text but does not declare it, so every config the
    card declares loads with a plain `load_dataset` (`datasets` refuses a split without
    rows: "corresponds to no data")."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("video", pa.string()), ("label", pa.string())])
    empty = {s: schema.empty_table() for s in ("train", "test")}
    full = {"train": pa.table({"id": ["a"], "video": ["c.mp4"], "label": ["Collision"]}),
            "test": schema.empty_table()}  # fmt: skip
    configs = [ConfigTables("vqa", "d", "g", "t", empty), ConfigTables("mcq", "d", "g", "t", full)]
    prov = write_dataset_folder(tmp_path, configs, stage="s", stage_info={}, top={})
    assert prov["configs"]["vqa"]["splits"]["train"]["rows"] == 0
    assert set(prov["configs"]["mcq"]["splits"]) == {"train"}  # the empty side of a full one
    card = (tmp_path / "README.md").read_text()
    assert set(declared(tmp_path)) == {"mcq"} and "Configs without rows" in card
    assert "| `vqa` | d | 0 | 0 |" in card
    f = pq.ParquetFile(data_path(tmp_path, "vqa", "test"))
    assert f.metadata.num_rows == 0 and f.schema_arrow == schema
    for name in declared(tmp_path):
        ds = datasets.load_dataset(str(tmp_path), name, cache_dir=str(tmp_path / "c"))
        assert ds["train"]["id"] == ["a"]


def test_data_files_are_named_by_content_and_found_through_provenance(tmp_path):
    """A config's files are named by their bytes; a new file that a killed run wrote but
    never declared is not one of them, and the next write removes it with the old ones."""
    import os

    import pytest

    from vlm_autodrive.builders.core.files import file_sha256
    from vlm_autodrive.builders.dataset.folder import data_files, write_data_file

    def write(answer: str) -> dict:
        table = pa.table({"id": ["a"], "video": ["c.mp4"], "label": ["Collision"], "x": [answer]})
        cfg = ConfigTables("mcq", "d", "g", "t", {"train": table})
        return write_dataset_folder(tmp_path, [cfg], stage="s", stage_info={}, top={})

    write("one")
    first = data_path(tmp_path, "mcq", "train")
    assert first.name == f"train-{file_sha256(first)[:16]}.parquet"
    assert data_files(tmp_path, "mcq") == {"train": first.relative_to(tmp_path).as_posix()}
    assert data_files(tmp_path, "mcq", "test") == {}
    # A killed run: its new file is there, provenance and the card still name the old one.
    stray = write_data_file(tmp_path, "mcq", "train", pa.table({"id": ["b"]}))
    assert data_path(tmp_path, "mcq", "train") == first
    assert f"path: {first.relative_to(tmp_path).as_posix()}" in (tmp_path / "README.md").read_text()
    write("two")
    now = data_path(tmp_path, "mcq", "train")
    assert now != first and sorted((tmp_path / "data/mcq").iterdir()) == [now]
    assert not (tmp_path / stray).exists()
    os.utime(now, ns=(10**18, 10**18))
    write("two")  # the same content: the same file, not rewritten
    assert data_path(tmp_path, "mcq", "train") == now and now.stat().st_mtime_ns == 10**18
    # Without provenance.json the folder's files are found by name, one per split.
    (tmp_path / "provenance.json").unlink()
    assert data_path(tmp_path, "mcq", "train") == now
    write_data_file(tmp_path, "mcq", "train", pa.table({"id": ["c"]}))
    with pytest.raises(ValueError, match="several files for one split"):
        data_files(tmp_path, "mcq")
