"""Publishing: semver and existing versions refused first, the local target, the Hub plan
and its executor (against a fake HfApi: no network), token handling, the card."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import DatasetCard, DatasetCardData

from tests.builders.small_builds import recipe, rule_build
from vlm_autodrive.builders.dataset.folder import register_config
from vlm_autodrive.builders.mix.stage import mix
from vlm_autodrive.builders.release.publish import PublishError, hub_plan, local_plan, publish
from vlm_autodrive.builders.release.semver import parse_version, previous_version
from vlm_autodrive.builders.release.staging import ReleaseError, release_files
from vlm_autodrive.builders.synthetic.configs import write_config

MIX = "components:\n  - split: mcq\n    upsample: {Collision: 3}\n"


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


def test_a_dry_run_lists_every_file_and_writes_nothing(build, tmp_path):
    files = release_files(build).all_paths
    res = publish(build, "0.2.0", to=tmp_path / "pub", dry_run=True)
    assert not (tmp_path / "pub").exists()
    text = res.format()
    assert all(f in text for f in files if f not in ("README.md", "provenance.json"))
    res = publish(build, "0.2.0", repo="org/drive", dry_run=True, api=Exploding())
    assert all(f in res.format() for f in files)
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


class FakeHub:
    """HfApi's methods the publisher uses, over an in-memory repo; `fail` names a method
    that raises."""

    def __init__(self, tags=(), fail=None, drop=None, error=None):
        self.tags, self.fail, self.drop = list(tags), fail, drop
        self.error = error or ConnectionError("connection refused")
        self.files: set[str] = {"old/stale.txt"} if tags else set()
        self.calls: list[str] = []
        self.head = "abc123"

    def _call(self, name):
        self.calls.append(name)
        if name == self.fail:
            raise self.error

    def list_repo_refs(self, repo, repo_type):
        self._call("list_repo_refs")
        return SimpleNamespace(tags=[SimpleNamespace(name=t) for t in self.tags])

    def create_repo(self, repo, repo_type, exist_ok, private):
        self._call("create_repo")

    def upload_large_folder(self, repo_id, folder_path, repo_type):
        self._call("upload_large_folder")
        root = Path(folder_path)
        self.files |= {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
        self.files.discard(self.drop)
        self.card = (root / "README.md").read_text()

    def list_repo_files(self, repo, repo_type, revision=None):
        self._call("list_repo_files")
        return sorted(self.files)

    def create_commit(self, repo, repo_type, operations, commit_message):
        self._call("create_commit")
        self.files -= {op.path_in_repo for op in operations}

    def repo_info(self, repo, repo_type):
        self._call("repo_info")
        return SimpleNamespace(sha=self.head)

    def create_tag(self, repo, tag, revision, repo_type, tag_message):
        self._call("create_tag")
        self.tagged = (tag, revision)


class Exploding:
    def __getattr__(self, name):
        raise AssertionError(f"a dry run called HfApi.{name}")


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    return "hf_secret_value_123"


def test_hub_publish_tags_the_verified_commit_last(build, token):
    hub = FakeHub()
    res = publish(build, "0.1.0", repo="org/drive", api=hub)
    assert hub.calls[-1] == "create_tag" and hub.tagged == ("v0.1.0", "abc123")
    assert hub.calls.index("upload_large_folder") < hub.calls.index("repo_info")
    assert set(release_files(build).all_paths) <= hub.files
    assert 'revision="v0.1.0"' in hub.card
    assert not (build / ".release" / "v0.1.0").exists()  # staging removed once tagged
    assert token not in res.format()


def test_an_existing_tag_is_refused_before_any_upload(build, token):
    hub = FakeHub(tags=["v0.1.0"])
    with pytest.raises(PublishError, match=r"already has tag v0.1.0.*Nothing was uploaded"):
        publish(build, "0.1.0", repo="org/drive", api=hub)
    assert hub.calls == ["list_repo_refs"]


def test_stale_files_are_deleted_before_verifying(build, token, tmp_path):
    hub = FakeHub(tags=["v0.1.0"])
    prev = tmp_path / "pub"
    publish(build, "0.1.0", to=prev)
    publish(build, "0.2.0", repo="org/drive", api=hub, previous=prev / "v0.1.0")
    assert "old/stale.txt" not in hub.files and hub.tagged[0] == "v0.2.0"
    assert "Changes of 0.2.0 against v0.1.0" in hub.card


@pytest.mark.parametrize(
    ("fail", "said"),
    [
        ("list_repo_refs", "cannot reach the Hub.*Nothing was uploaded. No tag was made"),
        ("upload_large_folder", "cannot reach the Hub.*run the same command again.*No tag"),
        ("create_commit", "run the same command again.*No tag was made"),
    ],
)
def test_a_failing_step_stops_before_the_tag(build, token, fail, said):
    hub = FakeHub(tags=["v0.0.1"], fail=fail)
    with pytest.raises(PublishError, match=said):
        publish(build, "0.1.0", repo="org/drive", api=hub, previous=build)
    assert "create_tag" not in hub.calls


def test_an_incomplete_upload_is_not_tagged(build, token):
    hub = FakeHub(drop="data/mcq/train-00000-of-00001.parquet")
    with pytest.raises(PublishError, match=r"lacks 1 files.*data/mcq/train.*No tag"):
        publish(build, "0.1.0", repo="org/drive", api=hub)
    assert "create_tag" not in hub.calls


def test_the_token_never_shows_in_messages(build, token):
    hub = FakeHub(fail="create_repo", error=RuntimeError(f"bad header Bearer {token}"))
    with pytest.raises(PublishError) as err:
        publish(build, "0.1.0", repo="org/drive", api=hub)
    assert token not in str(err.value) and "***" in str(err.value)


def test_a_missing_token_is_a_clear_message_and_nothing_else(build, monkeypatch, tmp_path):
    import huggingface_hub.constants as c

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(c, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    hub = FakeHub()
    with pytest.raises(PublishError, match=r"no Hugging Face token.*HF_TOKEN.*no tag was made"):
        publish(build, "0.1.0", repo="org/drive", api=hub)
    assert hub.calls == []


def test_a_stale_mixture_or_missing_clip_blocks_the_release(build, tmp_path):
    (build / "clips").rename(tmp_path / "clips")
    with pytest.raises(ReleaseError, match="clips the rows reference"):
        publish(build, "0.1.0", to=tmp_path / "pub")
    (tmp_path / "clips").rename(build / "clips")
    write_config(build, "mcq", {"Collision": 1, "Normal Driving": 2})
    register_config(build, "mcq", description="d", generator="g", template="t",
                    stage="rule_splits", stage_info={})  # fmt: skip
    with pytest.raises(ReleaseError, match="mixtures out of date: mix-m"):
        publish(build, "0.1.0", to=tmp_path / "pub")
