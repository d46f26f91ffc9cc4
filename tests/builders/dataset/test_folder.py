"""The dataset folder: configs written by a later stage join the card; nothing is lost."""

from __future__ import annotations

import pyarrow as pa
import yaml

from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.dataset.folder import ConfigTables, write_dataset_folder
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
    (build / "data" / "vqa" / "train-00000-of-00001.parquet").unlink()
    (build / "data" / "vqa").rmdir()
    build_rule_splits(build, config, load_taxonomy(), {}, force=True)
    assert set(declared(build)) == {"mcq", "caption_metadata"}
