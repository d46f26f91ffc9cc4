"""Publishing: semver and existing versions refused first, the local target, the Hub plan,
the checks that refuse a broken build, the card. The Hub itself: test_publish_hub.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard, DatasetCardData

from tests.builders.small_builds import recipe, rule_build
from vlm_autodrive.builders.dataset.folder import register_config
from vlm_autodrive.builders.mix.stage import mix
from vlm_autodrive.builders.release.publish import hub_plan, local_plan, publish
from vlm_autodrive.builders.release.semver import parse_version, previous_version
from vlm_autodrive.builders.release.staging import ReleaseError, release_files
from vlm_autodrive.builders.synthetic.configs import write_config

MIX = "components:\n  - config: mcq\n    upsample: {Collision: 3}\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A rule build with a mixture (shared: tests copy it before changing anything)."""
    tmp = tmp_path_factory.mktemp("pub")
    build = rule_build(tmp / "build")
    mix(recipe(tmp, MIX, "m.yaml"), build)
    return build


@pytest.fixture
def build(built, tmp_path):
    return Path(shutil.copytree(built, tmp_path / "build"))


def test_semver_parsing_and_order():
    assert str(parse_version("1.2.3-rc.1")) == "1.2.3-rc.1"
    assert parse_version("0.2.0").tag == "v0.2.0"
    for bad, hint in [("1.0", ""), ("v1.0.0", "without the leading v"), ("1.0.0+b1", "build"),
                      ("01.0.0", ""), ("1.0.0-", "")]:  # fmt: skip
        with pytest.raises(ValueError, match=f"not a semantic version.*{hint}"):
            parse_version(bad)
    order = ["0.1.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0-rc.1", "1.0.0", "1.0.1"]
    vs = [parse_version(v) for v in order]
    assert sorted(reversed(vs), key=lambda v: v.key()) == vs
    assert str(previous_version(parse_version("1.0.0"), vs)) == "1.0.0-rc.1"
    assert previous_version(parse_version("0.1.0"), vs) is None


def test_local_target_is_loadable_for_every_config_and_its_card_parses(
    build, tmp_path, monkeypatch
):
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    res = publish(build, "0.1.0", to=tmp_path / "pub", repo="org/drive", license="cc-by-4.0")
    rel = tmp_path / "pub" / "v0.1.0"
    assert res.where == str(rel) and not (tmp_path / "pub" / ".v0.1.0.partial").exists()
    card = DatasetCard.load(rel / "README.md")
    assert isinstance(card.data, DatasetCardData)
    assert card.data.license == "cc-by-4.0"
    assert "video-text-to-text" in card.data.task_categories and card.data.tags
    configs = {c["config_name"]: c for c in card.data.configs}
    assert set(configs) == {"mcq", "caption_metadata", "mix-m"}
    assert 'load_dataset("org/drive", "mix-m", revision="v0.1.0")' in card.text
    assert "## Rows per config and class" in card.text and "First release (0.1.0)" in card.text
    for name, c in configs.items():
        ds = datasets.load_dataset(str(rel), name, cache_dir=str(tmp_path / "cache"))
        assert set(ds) == {f["split"] for f in c["data_files"]}
        for split in ds.values():
            assert all((rel / v).is_file() for v in split["video"])
    assert (rel / "mix/m/class_distribution.png").is_file()
    assert not (rel / "chunk").exists() and not (rel / "ingest").exists()


def test_existing_and_non_semver_versions_are_refused_before_anything(build, tmp_path):
    pub = tmp_path / "pub"
    with pytest.raises(ValueError, match="not a semantic version"):
        publish(build, "0.1", to=pub)
    assert not pub.exists()
    publish(build, "0.1.0", to=pub)
    before = sorted(p.name for p in pub.iterdir())
    with pytest.raises(ReleaseError, match="already published"):
        publish(build, "0.1.0", to=pub)
    with pytest.raises(ReleaseError, match="already published"):
        publish(build, "0.1.0", to=pub, dry_run=True)
    assert sorted(p.name for p in pub.iterdir()) == before


def test_a_dry_run_lists_every_file_with_verbose_and_writes_nothing(build, tmp_path):
    files = release_files(build).all_paths
    res = publish(build, "0.2.0", to=tmp_path / "pub", dry_run=True)
    assert not (tmp_path / "pub").exists()
    text = res.format(verbose=True)
    assert all(f in text for f in files if f not in ("README.md", "provenance.json"))
    res = publish(build, "0.2.0", repo="org/drive", dry_run=True, api=Exploding())
    assert all(f in res.format(verbose=True) for f in files)
    summary = res.format()  # without verbose: counts, size and the first few files
    assert sum(f in summary for f in files) < len(files) and "(all with -v)" in summary
    assert f"{len(files)} files, " in summary
    assert not (build / ".release").exists()


def test_the_hub_plan_uploads_everything_then_verifies_then_tags(build):
    rf = release_files(build)
    plan = hub_plan("org/drive", parse_version("0.2.0"), rf)
    kinds = [op.kind for op in plan]
    assert kinds == ["token", "check", "changelog", "stage", "create", "upload", "delete",
                     "verify", "tag"]  # fmt: skip
    upload = plan[kinds.index("upload")]
    assert set(upload.files) == set(rf.all_paths)
    assert {"README.md", "provenance.json", "changelog.json"} <= set(upload.files)
    assert any(f.startswith("clips/") for f in upload.files)
    assert any(f.startswith("data/mix-m/") for f in upload.files)
    assert plan[-1].detail.startswith("v0.2.0")
    local = local_plan(Path("/x"), parse_version("0.2.0"), rf)
    assert [op.kind for op in local] == ["check", "changelog", "copy", "write", "rename"]


class Exploding:
    def __getattr__(self, name):
        raise AssertionError(f"a dry run called HfApi.{name}")


def test_a_stale_mixture_or_missing_clip_blocks_the_release(build, tmp_path):
    (build / "clips").rename(tmp_path / "clips")
    with pytest.raises(ReleaseError, match="clips the rows reference"):
        publish(build, "0.1.0", to=tmp_path / "pub")
    (tmp_path / "clips").rename(build / "clips")
    train = write_config(build, "mcq", {"Collision": 1, "Normal Driving": 2})
    register_config(build, "mcq", files={"train": train}, description="d", generator="g",
                    template="t", stage="rule_splits", stage_info={})  # fmt: skip
    with pytest.raises(ReleaseError, match="mixtures out of date: mix-m"):
        publish(build, "0.1.0", to=tmp_path / "pub")


def test_a_stale_mixture_is_named_once_with_every_config_it_read_older_rows_of():
    from vlm_autodrive.builders.release.staging import _check_mixtures_fresh

    now = {"splits": {"train": {"sha256": "new"}}}
    prov = {
        "configs": {"mcq": now, "vqa": now, "caption_metadata": now, "mix-m": {}},
        "stages": {
            "mix-m": {
                "kind": "mixture",
                "config": "mix-m",
                "inputs": {c: {"train": "old"} for c in ("mcq", "vqa")}
                | {"caption_metadata": {"train": "new"}},
            }
        },
    }
    with pytest.raises(ReleaseError) as e:
        _check_mixtures_fresh(prov)
    assert str(e.value).startswith("mixtures out of date: mix-m (made from older mcq, vqa rows).")
