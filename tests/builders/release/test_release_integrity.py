"""A local release is a copy of its own, with a SHA256SUMS that `sha256sum -c` checks, and
it carries the build's audit when that audit is current (the card's audit section then
renders and its `audit/report.md` resolves); a stale audit is refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import yaml

from tests.builders.real_builds import autodrive, tiny_recipe
from tests.builders.small_builds import rule_build
from vlm_autodrive.builders.audit.records import DuplicateGroup
from vlm_autodrive.builders.audit.report import AuditReport
from vlm_autodrive.builders.core.files import write_json
from vlm_autodrive.builders.dataset.folder import data_path
from vlm_autodrive.builders.release.checksums import SHA256SUMS, check_sums, read_sums
from vlm_autodrive.builders.release.readonly import RELEASE_MARKER
from vlm_autodrive.builders.release.semver import parse_version
from vlm_autodrive.builders.release.staging import release_files, stage_release


def publish(capsys, build, to, version):
    return autodrive(capsys, "publish", build, "--version", version, "--to", to)


def released_files(folder):
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def assert_sums_hold(folder):
    assert check_sums(folder) == []
    if shutil.which("sha256sum"):  # the standard tool, as a user checks a release
        done = subprocess.run(["sha256sum", "--quiet", "-c", SHA256SUMS], cwd=folder)
        assert done.returncode == 0
    assert set(read_sums(folder)) == released_files(folder) - {SHA256SUMS, RELEASE_MARKER}


def test_a_build_file_overwritten_in_place_does_not_change_the_release(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path)
    build, pub = tmp_path / "build", tmp_path / "pub"
    assert autodrive(capsys, "build", recipe)[0] == 0
    code, text = publish(capsys, build, pub, "0.1.0")
    assert code == 0, text
    release = pub / "v0.1.0"
    rf = release_files(build)
    assert released_files(release) == set(rf.all_paths) | {RELEASE_MARKER}
    for rel in rf.files:  # no inode shared with the build
        assert (release / rel).stat().st_ino != (build / rel).stat().st_ino, rel
    assert_sums_hold(release)

    # `cp other.mp4 build/clips/...`: writes into the clip's existing inode
    clips = pq.read_table(data_path(build, "mcq", "train"))["video"].to_pylist()
    first, other = clips[0], next(c for c in clips if c != clips[0])
    published = (release / first).read_bytes()
    with open(build / first, "r+b") as f:
        f.truncate(0)
        f.write((build / other).read_bytes())
    assert (release / first).read_bytes() == published
    assert_sums_hold(release)

    # the build is refused until the clip is cut again; then 0.2.0 compares with 0.1.0
    code, text = publish(capsys, build, pub, "0.2.0")
    assert code == 2 and "not the files the chunk stage cut" in text, text
    assert autodrive(capsys, "build", recipe)[0] == 0
    code, text = publish(capsys, build, pub, "0.2.0")
    assert code == 0 and "Changes of 0.2.0 against 0.1.0" in text, text
    assert_sums_hold(pub / "v0.2.0")
    assert read_sums(pub / "v0.2.0")[first] == read_sums(release)[first]

    (release / first).write_bytes(b"tampered")  # what SHA256SUMS is for
    assert check_sums(release) == [f"{first}: sha256 differs from SHA256SUMS"]


def test_the_audit_ships_when_current_and_a_stale_one_is_refused(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path, audit={"after_build": False})
    build, pub = tmp_path / "build", tmp_path / "pub"
    assert autodrive(capsys, "build", recipe)[0] == 0
    code, text = publish(capsys, build, pub, "0.1.0")  # no audit: as before, no section
    assert code == 0, text
    assert not (pub / "v0.1.0" / "audit").exists()
    assert "## Audit" not in (pub / "v0.1.0" / "README.md").read_text()

    assert autodrive(capsys, "audit", build)[0] == 0
    settings = yaml.safe_load(recipe.read_text())
    settings["rules"]["seed"] = 1  # the rule splits are made again; the audit is not
    recipe.write_text(yaml.safe_dump(settings))
    assert autodrive(capsys, "build", recipe)[0] == 0
    code, text = publish(capsys, build, pub, "0.2.0")
    # the audit's stamp records the upstream outputs it read: the exact refusal
    assert code == 2 and "the audit was made from an older rule_splits/" in text, text
    assert "the rule_splits stage has run since" in text
    # an audit from before stamps recorded their inputs: judged by stamp times and key
    stamp_path = build / "audit" / "stamp.json"
    stamp, written = json.loads(stamp_path.read_text()), stamp_path.stat()
    del stamp["inputs"]
    stamp_path.write_text(json.dumps(stamp))
    os.utime(stamp_path, ns=(written.st_atime_ns, written.st_mtime_ns))  # as it was written
    code, text = publish(capsys, build, pub, "0.2.0")
    assert code == 2 and "audit/report.json is out of date" in text, text
    assert "rule_splits" in text and "ran again since the audit" in text
    assert f"autodrive audit {build}" in text and not (pub / "v0.2.0").exists()

    assert autodrive(capsys, "audit", build)[0] == 0  # what the message says to run
    code, text = publish(capsys, build, pub, "0.2.0")
    assert code == 0, text
    release = pub / "v0.2.0"
    card = (release / "README.md").read_text()
    assert "## Audit" in card and "`audit/report.md`" in card
    report = yaml.safe_load((release / "audit" / "report.json").read_text())
    assert report["plots"] and all((release / p).is_file() for p in report["plots"])
    assert (release / "audit" / "report.md").read_bytes() == (
        build / "audit/report.md"
    ).read_bytes()
    for rel in released_files(release / "audit"):
        assert str(tmp_path) not in (release / "audit" / rel).read_bytes().decode("latin-1")
    assert_sums_hold(release)

    (build / "audit" / "stamp.json").unlink()  # as an audit with --text-model leaves it
    code, text = publish(capsys, build, pub, "0.3.0")
    assert code == 2 and "has no stamp" in text and f"autodrive audit {build}" in text, text


def test_the_released_audit_names_no_path_of_the_machine(tmp_path):
    """A duplicate group names its sources' paths: the release has them relative to the
    build, or by their last part; report.md is made again from the scrubbed report."""
    build = rule_build(tmp_path / "build")
    group = DuplicateGroup(
        kind="source_bytes",
        members=["v0001", "v0002"],
        paths=["/home/alice/private-videos/a.mp4", str(build / "clips" / "b.mp4")],
        sides=["train", "test"],
        crosses_sides=True,
    )
    report = AuditReport(build="build", duplicates=[group], notes=["see http://10.0.0.5:8000/x"])
    write_json(build / "audit" / "report.json", report.to_dict())
    (build / "audit" / "report.md").write_text(report.markdown())
    dest = tmp_path / "staged"
    stage_release(
        release_files(build), dest, parse_version("0.1.0"),
        repo=None, license="other", previous=None,
    )  # fmt: skip
    text = (dest / "audit" / "report.json").read_text() + (dest / "audit" / "report.md").read_text()
    assert "alice" not in text and str(tmp_path) not in text and "10.0.0.5" not in text
    assert "private-videos" not in text and "a.mp4" in text and "clips/b.mp4" in text
    assert "## Audit" in (dest / "README.md").read_text()
    assert check_sums(dest) == []


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def test_a_hub_upload_unlike_its_sha256sums_is_not_tagged(tmp_path):
    """The Hub's staging folder hard-links the build's files: a clip changed in the build
    after staging is uploaded as changed, but SHA256SUMS records the staged one; the
    verify step compares the Hub's files with SHA256SUMS and makes no tag."""
    from tests.builders.release.test_publish_hub import REPO, TOKEN
    from tests.doubles.hub_server import start_hub_server

    build = rule_build(tmp_path / "build", videos=16)
    clip = build / next(f for f in release_files(build).files if f.startswith("clips/"))
    with start_hub_server(tmp_path / "hub", TOKEN) as hub:
        proc = subprocess.run(
            [sys.executable, "-c", CHANGED_MEANWHILE, str(build), str(clip), REPO],
            env=hub.client_env(tmp_path / "client", token=TOKEN),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert "not the file SHA256SUMS records" in proc.stdout and "No tag" in proc.stdout
        assert hub.refs(REPO)["tags"] == {}


# The client, in a process of its own (the Hub's address is read when huggingface_hub is
# imported): it changes the clip in place, through the staged hard link, then uploads.
CHANGED_MEANWHILE = """
import sys
from huggingface_hub import HfApi
from vlm_autodrive.builders.release.publish import PublishError, publish

class ChangedMeanwhile(HfApi):
    def upload_folder(self, **kwargs):
        with open(sys.argv[2], "r+b") as f:
            f.write(b"X")
        return super().upload_folder(**kwargs)

try:
    publish(sys.argv[1], "0.1.0", repo=sys.argv[3], api=ChangedMeanwhile())
except PublishError as e:
    print(e)
"""
