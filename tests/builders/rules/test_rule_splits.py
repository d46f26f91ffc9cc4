"""The rule splits stage end to end on synthetic tables (no video files): the build
folder loads with `datasets` for every config, offline; rebuilds are identical."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from pydantic import ValidationError

from vlm_autodrive import __version__
from vlm_autodrive.builders.core.files import file_sha256
from vlm_autodrive.builders.core.jinja_env import TemplateLoadError
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.dataset.folder import data_files, data_path
from vlm_autodrive.builders.dataset.rows import COMMON_FIELDS
from vlm_autodrive.builders.rules.stage import RuleSplitsConfig, build_rule_splits
from vlm_autodrive.builders.synthetic.tables import write_synthetic_tables
from vlm_autodrive.resources import bundled

TAX = load_taxonomy()
CONFIG = RuleSplitsConfig(test_per_class=8, seed=0)
RECIPE = {"manifest": "manifest.jsonl", "build_dir": "build", "rules": {"test_per_class": 8}}
COMMON = [name for name, _ in COMMON_FIELDS]


def make_inputs(build: Path, videos: int = 300) -> Path:
    write_synthetic_tables(build, videos, seed=1, normal_fraction=0.1, collision_fraction=0.3)
    return build


def outputs(build: Path) -> dict[str, bytes]:
    skip = ("ingest/", "chunk/")
    return {
        p.relative_to(build).as_posix(): p.read_bytes()
        for p in sorted(build.rglob("*"))
        if p.is_file() and not p.relative_to(build).as_posix().startswith(skip)
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    build = make_inputs(tmp_path_factory.mktemp("rule") / "build")
    return build, build_rule_splits(build, CONFIG, TAX, RECIPE)


def load(build: Path, name: str, cache: Path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    return datasets.load_dataset(str(build), name, cache_dir=str(cache))


def test_load_dataset_reads_every_config_offline(built, tmp_path, monkeypatch):
    build, summary = built
    clips = {c["clip_id"]: c for c in pq.read_table(build / "chunk/clips.parquet").to_pylist()}
    for name in ("mcq", "caption_metadata"):
        ds = load(build, name, tmp_path / "hf", monkeypatch)
        assert set(ds) == {"train", "test"}
        assert len(ds["test"]) == 8 * len(TAX.names)
        assert len(ds["train"]) == sum(summary.configs[name]["train"].values())
        assert ds["train"].column_names[: len(COMMON)] == COMMON
        for split in ("train", "test"):
            rows = ds[split].to_list()
            assert {r["split"] for r in rows} == {split}
            assert len({r["id"] for r in rows}) == len(rows)
            for r in rows[:50]:
                clip = clips[r["clip_id"]]
                assert r["video"] == clip["path"] and r["label"] == clip["label"]
                assert r["video_id"] == clip["video_id"]
                assert r["answer"]


def test_test_split_is_balanced_and_leak_free(built):
    build, summary = built
    for name in ("mcq", "caption_metadata"):
        assert summary.configs[name]["test"] == dict.fromkeys(TAX.names, 8)
    tables = {s: pq.read_table(data_path(build, "mcq", s)) for s in ("train", "test")}
    train_videos = set(tables["train"].column("video_id").to_pylist())
    test_videos = set(tables["test"].column("video_id").to_pylist())
    assert train_videos and test_videos and not train_videos & test_videos
    sides = pq.read_table(build / "split/assignment.parquet").to_pylist()
    assert {r["split"] for r in sides} <= {"train", "test", "held_out"}
    assert len(sides) == pq.read_metadata(build / "chunk/clips.parquet").num_rows


def test_card_declares_every_config_and_provenance_records_hashes(built):
    build, summary = built
    text = (build / "README.md").read_text()
    header = yaml.safe_load(text.split("---\n")[1])
    declared = {c["config_name"]: c for c in header["configs"]}
    assert set(declared) == {"mcq", "caption_metadata"}
    assert declared["mcq"].get("default") is True
    for name, c in declared.items():
        files = {f["split"]: f["path"] for f in c["data_files"]}
        assert files == data_files(build, name)  # the card declares what provenance does
        assert set(files) == {"train", "test"}
        for s, rel in files.items():  # named by content: `<split>-<sha256[:16]>.parquet`
            assert rel == f"data/{name}/{s}-{file_sha256(build / rel)[:16]}.parquet"
        assert all((build / p).is_file() for p in files.values())
    prov = yaml.safe_load((build / "provenance.json").read_text())
    assert prov["toolkit"] == {"name": "vlm-autodrive", "version": __version__}
    assert prov["recipe"] == RECIPE
    stage = prov["stages"]["rule_splits"]
    assert len(stage["taxonomy_sha256"]) == 64
    assert {"mcq.jinja", "caption_metadata.jinja", "captions/detailed.jinja"} <= set(
        stage["templates"]
    )
    assert prov["configs"]["mcq"]["template"] == summary.templates["mcq"]


def test_summary_reports_letters_and_out_of_vocabulary(built):
    _, summary = built
    assert set(summary.answer_letters["train"]) == {"A", "B", "C"}
    assert summary.oov and all(summary.oov.values())
    text = summary.format()
    assert "mcq answer letters (train)" in text and "outside the taxonomy" in text


def test_rerun_does_nothing_and_rebuild_is_identical(built, tmp_path):
    build, summary = built
    before = outputs(build)
    again = build_rule_splits(build, CONFIG, TAX, RECIPE)
    assert again.skipped and again.to_dict() == summary.to_dict()
    assert outputs(build) == before
    # A forced rebuild, and a build of the same inputs in another folder, write the same bytes.
    forced = build_rule_splits(build, CONFIG, TAX, RECIPE, force=True)
    assert not forced.skipped and outputs(build) == before
    other = tmp_path / "other"
    shutil.copytree(build / "ingest", other / "ingest")
    shutil.copytree(build / "chunk", other / "chunk")
    build_rule_splits(other, CONFIG, TAX, RECIPE)
    assert outputs(other) == before


def test_template_edit_keeps_ids_and_changes_content_hash(built, tmp_path):
    build, _ = built
    mine = tmp_path / "templates"
    mine.mkdir()
    text = (bundled("templates") / "mcq.jinja").read_text()
    (mine / "mcq.jinja").write_text(text.replace("Choose one option.", "Pick one."))
    other = tmp_path / "b"
    shutil.copytree(build / "ingest", other / "ingest")
    shutil.copytree(build / "chunk", other / "chunk")
    build_rule_splits(other, CONFIG.model_copy(update={"templates": str(mine)}), TAX, RECIPE)
    for name in ("mcq", "caption_metadata"):
        a = pq.read_table(data_path(build, name, "train")).to_pylist()
        b = pq.read_table(data_path(other, name, "train")).to_pylist()
        assert [r["id"] for r in a] == [r["id"] for r in b]
        changed = name == "mcq"
        assert all((x["content_hash"] != y["content_hash"]) == changed for x, y in zip(a, b))
        assert (a[0]["template"] != b[0]["template"]) == changed


def test_typo_in_a_template_fails_before_anything_is_written(tmp_path):
    build = make_inputs(tmp_path / "build", videos=30)
    mine = tmp_path / "templates"
    shutil.copytree(bundled("templates") / "captions", mine / "captions")
    scene = mine / "captions" / "scene.jinja"
    scene.write_text(scene.read_text().replace("p.road[road]", "p.road[raod]"))
    config = RuleSplitsConfig(test_per_class=2, templates=str(mine))
    with pytest.raises(TemplateLoadError, match=r"captions/scene\.jinja:\d+: unknown variable"):
        build_rule_splits(build, config, TAX, RECIPE)
    assert not (build / "data").exists() and not (build / "README.md").exists()


def test_dropping_a_config_removes_it_from_folder_and_card(tmp_path):
    build = make_inputs(tmp_path / "build", videos=60)
    build_rule_splits(build, RuleSplitsConfig(test_per_class=3), TAX, RECIPE)
    only = RuleSplitsConfig(test_per_class=3, configs=["mcq"])
    summary = build_rule_splits(build, only, TAX, RECIPE)
    assert list(summary.configs) == ["mcq"]
    assert not (build / "data" / "caption_metadata").exists()
    header = yaml.safe_load((build / "README.md").read_text().split("---\n")[1])
    assert [c["config_name"] for c in header["configs"]] == ["mcq"]


def test_short_class_error_names_the_class(tmp_path):
    build = make_inputs(tmp_path / "build", videos=40)
    with pytest.raises(ValueError, match=r"'Collision': \d+ clips in \d+ videos"):
        build_rule_splits(build, RuleSplitsConfig(test_per_class=66), TAX, RECIPE)
    ok = RuleSplitsConfig(test_per_class=66, on_short="take_available")
    summary = build_rule_splits(build, ok, TAX, RECIPE)
    assert summary.warnings and "warning:" in summary.format()


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"run `autodrive ingest MANIFEST --build .*` first"):
        build_rule_splits(tmp_path, CONFIG, TAX, RECIPE)
    build = make_inputs(tmp_path / "build", videos=20)
    t = pq.read_table(build / "chunk/clips.parquet").to_pylist()
    t[0]["label"] = "Crash"
    import pyarrow as pa

    from vlm_autodrive.builders.clips.records import CLIP_SCHEMA

    pq.write_table(pa.Table.from_pylist(t, schema=CLIP_SCHEMA), build / "chunk/clips.parquet")
    with pytest.raises(ValueError, match="'Crash': 1"):
        build_rule_splits(build, CONFIG, TAX, RECIPE)


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ValidationError, match="test_per_clas"):
        RuleSplitsConfig.model_validate({"test_per_clas": 5})
    with pytest.raises(ValidationError, match="mcq_options"):
        RuleSplitsConfig.model_validate({"mcq_options": "shuffled"})
    with pytest.raises(ValidationError, match="configs"):
        RuleSplitsConfig.model_validate({"configs": ["vqa"]})


def test_without_a_test_split_the_folder_still_loads(tmp_path, monkeypatch):
    build = make_inputs(tmp_path / "build", videos=30)
    summary = build_rule_splits(build, RuleSplitsConfig(test_per_class=0), TAX, RECIPE)
    assert summary.assignment["videos"]["test"] == 0
    assert set(data_files(build, "mcq")) == {"train"}
    assert not list((build / "data/mcq").glob("test-*"))
    ds = load(build, None, tmp_path / "hf", monkeypatch)  # the default config: mcq
    assert set(ds) == {"train"} and "answer_letter" in ds["train"].column_names
