"""`autodrive publish` with the real `huggingface_hub` and `datasets` against the local Hub
server (tests/hub_server.py): publish, load every config at each tag, a second version
with its changelog against the Hub's first, a killed upload, a refused tag, verification
by content, and that neither the token nor the machine's paths reach any output or file.

The clients run as subprocesses with the server's `client_env` (HF_ENDPOINT and friends are
read when the libraries are first imported); the server runs here, so its counters and
storage are read directly.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.builders.small_builds import rule_build
from tests.doubles.hub_server import HubServer, start_hub_server
from vlm_autodrive.builders.dataset.folder import data_path
from vlm_autodrive.resources import bundled

TOKEN = "hf_test" + secrets.token_hex(12)
REPO = "org/drive"
MARK = "@@RESULT@@"
SIDES = ("train", "test")

LOAD = """
import json, sys
import datasets
out = {}
for rev, configs in json.loads(sys.argv[1]).items():
    for config in configs:
        ds = datasets.load_dataset(sys.argv[2], config, revision=rev)
        out.setdefault(rev, {})[config] = {s: sorted(ds[s]["id"]) for s in ds}
print(MARK + json.dumps(out))
"""


def cli(hub: HubServer, home: Path, *args: str, token: str | None = TOKEN):
    """`autodrive ARGS` in a fresh process pointed at the server."""
    proc = subprocess.run(
        [sys.executable, "-m", "vlm_autodrive.cli", *args],
        env=hub.client_env(home, token=token),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert TOKEN not in proc.stdout + proc.stderr
    return proc


def load_ids(hub: HubServer, home: Path, wanted: dict[str, list[str]]) -> dict:
    """rev -> config -> split -> sorted row ids, as `datasets.load_dataset` reads the Hub."""
    code = LOAD.replace("MARK", repr(MARK))
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(wanted), REPO],
        env=hub.client_env(home, token=TOKEN),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(MARK))
    return json.loads(line[len(MARK) :])


def local_ids(folder: Path) -> dict[str, dict[str, list[str]]]:
    prov = json.loads((folder / "provenance.json").read_text())
    return {
        name: {
            s: sorted(pq.read_table(folder / v["path"], columns=["id"])["id"].to_pylist())
            for s, v in c["splits"].items()
        }
        for name, c in prov["configs"].items()
    }


def edited_templates(tmp: Path) -> Path:
    """mcq.jinja with Collision answers reading differently (the changelog's example)."""
    folder = tmp / "templates"
    folder.mkdir()
    text = bundled("templates", "mcq.jinja").read_text()
    old = "{{ answer.letter }}. {{ answer.name }}"
    new = old + '{% if answer.name == "Collision" %} (contact){% endif %}'
    (folder / "mcq.jinja").write_text(text.replace(old, new))
    return folder


def stored_bytes(hub_root: Path) -> list[bytes]:
    """Every file the server stores for repos (regular blobs and LFS objects)."""
    return [p.read_bytes() for d in ("blobs", "lfs") for p in (hub_root / d).rglob("*")
            if p.is_file()]  # fmt: skip


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """v0.1.0 of a small build, then v0.2.0 after a template edit, both through the CLI."""
    base = tmp_path_factory.mktemp("hub")
    build = rule_build(base / "build", videos=16)
    with start_hub_server(base / "hub", TOKEN) as hub:
        home = base / "client"
        first = cli(hub, home, "publish", str(build), "--repo", REPO, "--version", "0.1.0")
        assert first.returncode == 0, first.stderr
        v1 = local_ids(build)
        shutil.copytree(build, base / "build-v1", ignore=shutil.ignore_patterns("clips"))
        rule_build(build, templates=edited_templates(base), videos=16)
        second = cli(hub, home, "publish", str(build), "--repo", REPO, "--version", "0.2.0")
        assert second.returncode == 0, second.stderr
        yield {"hub": hub, "base": base, "build": build, "v1": v1, "v2": local_ids(build),
               "first": first, "second": second}  # fmt: skip


def test_both_versions_load_at_their_tags_with_their_own_rows(releases):
    hub, v1, v2 = releases["hub"], releases["v1"], releases["v2"]
    got = load_ids(hub, releases["base"] / "loader", {"v0.1.0": list(v1), "v0.2.0": list(v2)})
    assert got == {"v0.1.0": v1, "v0.2.0": v2}
    assert set(hub.refs(REPO)["tags"]) == {"v0.1.0", "v0.2.0"}
    assert "published v0.1.0" in releases["first"].stdout
    assert "First release (0.1.0)" in releases["first"].stdout


def test_the_second_changelog_is_computed_against_the_hubs_first(releases):
    out = releases["second"].stdout
    assert "Changes of 0.2.0 against 0.1.0" in out
    labels = [
        k
        for s in SIDES
        for k in pq.read_table(data_path(releases["base"] / "build-v1", "mcq", s))[
            "label"
        ].to_pylist()
    ]
    assert labels.count("Collision")
    assert f"| `mcq` | 0 | 0 | {labels.count('Collision')} |" in out
    assert "| `caption_metadata` | 0 | 0 | 0 |" in out


def test_an_existing_tag_is_refused_before_anything_is_sent(releases):
    hub = releases["hub"]
    before = len(hub.requests)
    proc = cli(hub, releases["base"] / "client", "publish", str(releases["build"]),
               "--repo", REPO, "--version", "0.2.0")  # fmt: skip
    assert proc.returncode == 2 and "already has tag v0.2.0" in proc.stderr  # bad input
    assert "Traceback" not in proc.stderr
    sent = [r for r in hub.requests[before:] if r.method in ("POST", "PUT", "DELETE")]
    assert sent == []


def test_no_token_path_or_server_address_in_any_release_file(releases):
    build = str(releases["build"].resolve())
    stored = stored_bytes(releases["base"] / "hub")
    assert stored
    for data in stored:
        assert TOKEN.encode() not in data
        assert build.encode() not in data and b"127.0.0.1" not in data
    for p in releases["base"].rglob("*"):
        if p.is_file() and "hub" not in p.relative_to(releases["base"]).parts[:1]:
            assert TOKEN.encode() not in p.read_bytes(), p


def test_a_killed_upload_leaves_no_tag_and_a_rerun_sends_only_the_rest(tmp_path):
    build = rule_build(tmp_path / "build", videos=16)
    with start_hub_server(tmp_path / "hub", TOKEN, fail_after_lfs_uploads=3) as hub:
        args = ("publish", str(build), "--repo", REPO, "--version", "0.1.0")
        proc = cli(hub, tmp_path / "client", *args)
        assert proc.returncode == 1, proc.stdout
        assert "run the same command again" in proc.stderr and "No tag was made" in proc.stderr
        assert hub.refs(REPO)["tags"] == {} and hub.lfs_uploads == 3
        first = set(hub.lfs_puts)
        hub.fail_after_lfs_uploads = None
        proc = cli(hub, tmp_path / "client", *args)
        assert proc.returncode == 0, proc.stderr
        assert set(hub.refs(REPO)["tags"]) == {"v0.1.0"}
        assert first < set(hub.lfs_puts) and all(n == 1 for n in hub.lfs_puts.values())


def test_a_commit_without_the_new_content_is_not_tagged(tmp_path, monkeypatch):
    """The Hub's head holds v0.1.0's files (same names) when v0.2.0's upload committed
    nothing: verification by size and sha256 refuses the tag."""
    from huggingface_hub import HfApi

    from vlm_autodrive.builders.release.publish import PublishError, publish

    build = rule_build(tmp_path / "build", videos=16)
    with start_hub_server(tmp_path / "hub", TOKEN) as hub:
        proc = cli(hub, tmp_path / "client", "publish", str(build), "--repo", REPO,
                   "--version", "0.1.0")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        prev = tmp_path / "pub"
        publish(build, "0.1.0", to=prev)
        rule_build(build, templates=edited_templates(tmp_path), videos=16)

        class NoUpload(HfApi):
            def upload_folder(self, **kwargs):
                return None  # a broken uploader: says nothing, commits nothing

        monkeypatch.setenv("HF_TOKEN", TOKEN)
        api = NoUpload(endpoint=hub.endpoint, token=TOKEN)
        with pytest.raises(PublishError, match=r"files differ from the local.*No tag was made"):
            publish(build, "0.2.0", repo=REPO, api=api, previous=prev / "v0.1.0")
        assert set(hub.refs(REPO)["tags"]) == {"v0.1.0"}


def test_publish_without_a_token_says_so_and_sends_nothing(tmp_path):
    build = rule_build(tmp_path / "build", videos=16)
    with start_hub_server(tmp_path / "hub", TOKEN) as hub:
        proc = cli(hub, tmp_path / "client", "publish", str(build), "--repo", REPO,
                   "--version", "0.1.0", token=None)  # fmt: skip
        assert proc.returncode == 1 and "no Hugging Face token" in proc.stderr
        assert not [r for r in hub.requests if r.method != "GET"]


def test_content_is_compared_by_sha256_and_blob_id_not_by_name(tmp_path):
    from vlm_autodrive.builders.release.remote import compare_files, git_blob_oid

    (tmp_path / "a.parquet").write_bytes(b"new!")
    (tmp_path / "README.md").write_text("card v2")
    same_size = {
        "a.parquet": (4, "0" * 64, "x"),
        "README.md": (7, None, git_blob_oid(tmp_path / "README.md")),
    }
    bad = compare_files(tmp_path, ["a.parquet", "README.md", "gone.txt"], same_size)
    assert [b.split()[0] for b in bad] == ["a.parquet", "gone.txt"]
    assert "sha256" in bad[0] and bad[1] == "gone.txt missing"
    other = {"README.md": (7, None, "1" * 40)}
    assert compare_files(tmp_path, ["README.md"], other) == [
        f"README.md content differs (git blob {'1' * 12})"
    ]


def test_an_assignment_pinned_to_a_hub_release_is_that_releases_own(releases):
    """`rules.pin_assignment: ORG/NAME@vX.Y.Z` reads the tagged release's assignment."""
    hub, base = releases["hub"], releases["base"]
    code = (
        "import sys\n"
        "from vlm_autodrive.builders.dataset.assign import pinned_assignment_path\n"
        "print(pinned_assignment_path(sys.argv[1]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, f"{REPO}@v0.1.0"],
        env=hub.client_env(base / "pin", token=TOKEN),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = Path(proc.stdout.strip().splitlines()[-1]).read_bytes()
    assert got == (base / "build-v1" / "split" / "assignment.parquet").read_bytes()
