"""The real `huggingface_hub` and `datasets` clients against the local Hub server (hub_server.py).

Each client run is a fresh subprocess whose environment (HubServer.client_env) points HF_ENDPOINT
at the server and HF_HOME / HF_DATASETS_CACHE at tmp folders, with Xet disabled: both libraries
read those variables when first imported. The server runs in this process, so the tests read its
counters (LFS PUTs, requests seen, refs) directly.

Over 400 lines: every route the real clients call, each checked through them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import secrets
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from urllib.error import HTTPError

import pytest

from tests.doubles.hub_server import (
    DEFAULT_GITATTRIBUTES,
    LFS_POINTER,
    HubServer,
    git_blob_oid,
    start_hub_server,
)

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
# The clients run in subprocesses: only check they are installed, do not import them here.
if importlib.util.find_spec("huggingface_hub") is None:
    pytest.skip("huggingface_hub is not installed", allow_module_level=True)
needs_datasets = pytest.mark.skipif(
    importlib.util.find_spec("datasets") is None, reason="datasets is not installed"
)

TOKEN = "test-" + secrets.token_hex(8)  # made up per run
REPO = "org/drive-mini"
MARK = "@@RESULT@@"
PRELUDE = f"""
import json, sys
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

def emit(obj):
    print({MARK!r} + json.dumps(obj))

def status_of(fn):
    try:
        fn()
    except HfHubHTTPError as e:
        return e.response.status_code
    return None
"""
README = """\
---
configs:
- config_name: configA
  data_files:
  - split: train
    path: configA/train-*.parquet
  - split: test
    path: configA/test-*.parquet
- config_name: configB
  data_files:
  - split: train
    path: configB/train.parquet
---
# drive-mini

A tiny dataset for the local Hub server tests.
"""


def rows_a(version: str) -> list[dict]:
    n = 3 if version == "v1" else 4
    return [{"id": i, "text": f"{version} clip {i}"} for i in range(n)]


ROWS_A_TEST = [{"id": 100, "text": "held out"}, {"id": 101, "text": "held out too"}]
ROWS_B = [{"id": 0, "label": "collision"}, {"id": 1, "label": "normal"}]


def write_parquet(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def make_dataset_folder(folder: Path, version: str) -> Path:
    """README with two configs, Parquet per split, a >64 KiB text file, a small binary file."""
    folder.mkdir(parents=True)
    (folder / "README.md").write_text(README)
    (folder / "notes.txt").write_text(f"release notes for {version}\n")
    write_parquet(folder / "configA" / "train-00000.parquet", rows_a(version))
    write_parquet(folder / "configA" / "test-00000.parquet", ROWS_A_TEST)
    write_parquet(folder / "configB" / "train.parquet", ROWS_B)
    big = "".join(json.dumps({"i": i, "pad": "x" * 90}) + "\n" for i in range(800))
    (folder / "extra" / "big.jsonl").parent.mkdir()
    (folder / "extra" / "big.jsonl").write_text(big)  # over the 64 KiB threshold: LFS by size
    (folder / "assets" / "marker.dat").parent.mkdir()
    (folder / "assets" / "marker.dat").write_bytes(bytes(range(256)) * 4)  # NUL bytes: LFS
    return folder


def local_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


REGULAR = {"README.md", "notes.txt"}  # the rest goes through LFS


def run_client(hub: HubServer, home: Path, code: str, token: str | None = TOKEN) -> dict:
    """Run client code in a fresh interpreter pointed at `hub`; returns what it emit()s."""
    env = hub.client_env(home, token=token)
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    results = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    assert results, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(results[-1][len(MARK) :])


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A repo with two releases: v0.1.0, then v0.2.0 (configA train and notes.txt changed)."""
    base = tmp_path_factory.mktemp("published")
    v1 = make_dataset_folder(base / "v1", "v1")
    v2 = make_dataset_folder(base / "v2", "v2")
    with start_hub_server(base / "hub", TOKEN, lfs_threshold=64 * 1024, tree_page_size=4) as hub:
        first = run_client(
            hub,
            base / "client",
            f"""
            api = HfApi()
            out = {{"url": str(api.create_repo({REPO!r}, repo_type="dataset"))}}
            out["create_again"] = status_of(lambda: api.create_repo({REPO!r}, repo_type="dataset"))
            api.create_repo({REPO!r}, repo_type="dataset", exist_ok=True)
            c1 = api.upload_folder(folder_path={str(v1)!r}, repo_id={REPO!r}, repo_type="dataset",
                                   commit_message="data v0.1.0")
            api.create_tag({REPO!r}, tag="v0.1.0", revision=c1.oid, repo_type="dataset")
            out["tag_again"] = status_of(
                lambda: api.create_tag({REPO!r}, tag="v0.1.0", repo_type="dataset"))
            out["c1"] = c1.oid
            emit(out)
            """,
        )
        puts_v1 = dict(hub.lfs_puts)
        second = run_client(
            hub,
            base / "client",
            f"""
            api = HfApi()
            c2 = api.upload_folder(folder_path={str(v2)!r}, repo_id={REPO!r}, repo_type="dataset",
                                   commit_message="data v0.2.0")
            api.create_tag({REPO!r}, tag="v0.2.0", repo_type="dataset")
            refs = api.list_repo_refs({REPO!r}, repo_type="dataset")
            emit({{"c2": c2.oid,
                   "branches": {{r.name: r.target_commit for r in refs.branches}},
                   "tags": {{r.name: r.target_commit for r in refs.tags}}}})
            """,
        )
        yield {
            "hub": hub,
            "base": base,
            "v1": local_files(v1),
            "v2": local_files(v2),
            "first": first,
            "second": second,
            "puts_v1": puts_v1,
        }


def test_publish_creates_repo_commits_and_tags(published):
    hub, first, second = published["hub"], published["first"], published["second"]
    assert first["url"] == f"{hub.endpoint}/datasets/{REPO}"
    assert first["create_again"] == 409  # an existing repo is refused, as on the Hub
    assert first["tag_again"] == 409  # an existing tag is refused
    c1, c2 = first["c1"], second["c2"]
    assert c1 != c2
    assert second["tags"] == {"v0.1.0": c1, "v0.2.0": c2}
    assert second["branches"] == {"main": c2}
    assert hub.refs(REPO) == {"branches": {"main": c2}, "tags": {"v0.1.0": c1, "v0.2.0": c2}}
    # every non-regular file went through the LFS batch + PUT route, the others inline
    lfs_files = {p: d for p, d in published["v2"].items() if p not in REGULAR}
    assert {sha256(d) for d in lfs_files.values()} <= hub.lfs_objects()
    assert not {sha256(published["v2"][p]) for p in REGULAR} & hub.lfs_objects()
    assert hub.requests_matching("POST", f"/api/datasets/{REPO}/preupload/main")
    assert hub.requests_matching("POST", "/api/validate-yaml")


def test_second_release_sends_only_changed_lfs_files(published):
    hub, v1, v2 = published["hub"], published["v1"], published["v2"]
    lfs_v1 = {sha256(d) for p, d in v1.items() if p not in REGULAR}
    assert set(published["puts_v1"]) == lfs_v1
    sent_for_v2 = set(hub.lfs_puts) - set(published["puts_v1"])
    assert sent_for_v2 == {sha256(v2["configA/train-00000.parquet"])}
    assert max(hub.lfs_puts.values()) == 1  # nothing was sent twice


@needs_datasets
def test_load_dataset_at_each_tag(published, tmp_path):
    out = run_client(
        published["hub"],
        tmp_path,
        f"""
        import datasets
        res = {{}}
        for rev in ("v0.1.0", "v0.2.0"):
            ds = datasets.load_dataset({REPO!r}, "configA", revision=rev)
            res[rev] = {{split: ds[split].to_list() for split in ds}}
        b = datasets.load_dataset({REPO!r}, "configB", revision="v0.2.0", split="train")
        res["configB"] = b.to_list()
        emit(res)
        """,
    )
    assert out["v0.1.0"] == {"train": rows_a("v1"), "test": ROWS_A_TEST}
    assert out["v0.2.0"] == {"train": rows_a("v2"), "test": ROWS_A_TEST}
    assert out["configB"] == ROWS_B


def test_download_and_listings_match_local_files(published, tmp_path):
    hub, v1, v2 = published["hub"], published["v1"], published["v2"]
    before = len(hub.requests)
    out = run_client(
        hub,
        tmp_path,
        f"""
        import hashlib
        from huggingface_hub import hf_hub_download
        api = HfApi()
        def digest(path):
            return hashlib.sha256(open(path, "rb").read()).hexdigest()
        res = {{"downloads": {{}}}}
        for name in ("notes.txt", "configA/train-00000.parquet", "assets/marker.dat"):
            res["downloads"][name] = digest(hf_hub_download({REPO!r}, name, repo_type="dataset",
                                                            revision="v0.1.0"))
        tree = api.list_repo_tree({REPO!r}, repo_type="dataset", revision="v0.2.0", recursive=True)
        res["tree"] = {{f.path: [getattr(f, "size", None), f.lfs.sha256 if getattr(f, "lfs", None)
                                 else None] for f in tree}}
        top = api.list_repo_tree({REPO!r}, "configA", repo_type="dataset", revision="v0.2.0")
        res["configA"] = sorted(f.path for f in top)
        asked = ["notes.txt", "configA/train-00000.parquet", "configB", "missing.txt"]
        infos = api.get_paths_info({REPO!r}, asked, repo_type="dataset", revision="v0.1.0",
                                   expand=True)
        res["paths_info"] = {{i.path: [type(i).__name__, getattr(i, "size", None),
                                      i.lfs.sha256 if getattr(i, "lfs", None) else None,
                                      getattr(i, "blob_id", None), i.last_commit.oid]
                             for i in infos}}
        res["sha_at_tag"] = api.dataset_info({REPO!r}, revision="v0.1.0").sha
        emit(res)
        """,
    )
    for name, digest in out["downloads"].items():
        assert digest == sha256(v1[name]), name
    expected_tree = {p: [len(d), None if p in REGULAR else sha256(d)] for p, d in v2.items()}
    expected_tree[".gitattributes"] = [len(DEFAULT_GITATTRIBUTES), None]  # the repo's first commit
    expected_tree |= {d: [None, None] for d in ("configA", "configB", "extra", "assets")}
    assert out["tree"] == expected_tree
    assert out["configA"] == ["configA/test-00000.parquet", "configA/train-00000.parquet"]
    c1 = published["first"]["c1"]
    assert out["sha_at_tag"] == c1
    parquet = v1["configA/train-00000.parquet"]
    pointer = LFS_POINTER.format(oid=sha256(parquet), size=len(parquet)).encode()
    assert out["paths_info"] == {
        "notes.txt": ["RepoFile", len(v1["notes.txt"]), None, git_blob_oid(v1["notes.txt"]), c1],
        "configA/train-00000.parquet": [
            "RepoFile", len(parquet), sha256(parquet), git_blob_oid(pointer), c1
        ],
        "configB": ["RepoFolder", None, None, None, c1],
    }  # fmt: skip
    # the recursive listing (11 entries) came in pages of 4, following the Link header
    pages = [r.path for r in hub.requests[before:] if "/tree/v0.2.0" in r.path]
    assert len([p for p in pages if "cursor=" in p]) >= 2, pages


def http(hub, method, path, token=TOKEN, headers=None, data=None):
    req = urllib.request.Request(hub.endpoint + path, method=method, data=data)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except HTTPError as e:
        return e.code, e.headers, e.read()


def test_resolve_headers_and_ranges(published):
    hub, v2 = published["hub"], published["v2"]
    c2 = published["second"]["c2"]
    data = v2["configA/train-00000.parquet"]
    path = f"/datasets/{REPO}/resolve/v0.2.0/configA/train-00000.parquet"
    status, h, body = http(hub, "HEAD", path, token=None)  # public repo: no token needed to read
    assert status == 200 and body == b""
    assert h["X-Repo-Commit"] == c2
    assert h["X-Linked-Etag"] == f'"{sha256(data)}"' and h["X-Linked-Size"] == str(len(data))
    assert h["Content-Length"] == str(len(data))
    status, h, body = http(hub, "GET", path, headers={"Range": "bytes=4-11"})
    assert (status, body, h["Content-Range"]) == (206, data[4:12], f"bytes 4-11/{len(data)}")
    status, _, body = http(hub, "GET", path, headers={"Range": "bytes=-8"})
    assert (status, body) == (206, data[-8:])
    assert http(hub, "GET", path, headers={"Range": f"bytes={len(data)}-"})[0] == 416
    # revisions: a URL-encoded full ref name, or a commit sha
    for rev in ("refs%2Ftags%2Fv0.2.0", c2):
        status, h, body = http(hub, "GET", f"/datasets/{REPO}/resolve/{rev}/notes.txt")
        assert (status, body) == (200, v2["notes.txt"])
        assert h["ETag"] == f'"{git_blob_oid(v2["notes.txt"])}"'
    status, h, _ = http(hub, "HEAD", f"/datasets/{REPO}/resolve/v9.9.9/notes.txt")
    assert (status, h["X-Error-Code"]) == (404, "RevisionNotFound")
    status, h, _ = http(hub, "HEAD", f"/datasets/{REPO}/resolve/main/nope.txt")
    assert (status, h["X-Error-Code"], h["X-Repo-Commit"]) == (404, "EntryNotFound", c2)


def test_wrong_token_is_refused_and_writes_need_a_token(published, tmp_path):
    hub = published["hub"]
    out = run_client(
        hub,
        tmp_path,
        f"""
        from huggingface_hub import hf_hub_download
        bad, anon = HfApi(token="hf_wrong"), HfApi(token=False)
        res = {{
            "whoami": status_of(bad.whoami),
            "refs": status_of(lambda: bad.list_repo_refs({REPO!r}, repo_type="dataset")),
            "upload": status_of(lambda: bad.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt",
                                                         repo_id={REPO!r}, repo_type="dataset")),
            "anon_tag": status_of(lambda: anon.create_tag({REPO!r}, tag="v9", repo_type="dataset")),
            "anon_read": open(hf_hub_download({REPO!r}, "notes.txt", repo_type="dataset",
                                              revision="v0.1.0", token=False)).read(),
        }}
        emit(res)
        """,
        token=None,
    )
    assert out["whoami"] == 401 and out["refs"] == 401 and out["upload"] == 401
    assert out["anon_tag"] == 401
    assert out["anon_read"] == published["v1"]["notes.txt"].decode()
    status, h, _ = http(hub, "GET", f"/api/datasets/{REPO}/refs", token="hf_wrong")
    assert status == 401 and h["X-Error-Message"] == "Invalid credentials in Authorization header"
    assert "v9" not in hub.refs(REPO)["tags"]


def test_interrupted_upload_leaves_no_tag_and_a_rerun_resumes(tmp_path):
    folder = tmp_path / "data"
    for i in range(5):
        write_parquet(
            folder / "data" / f"train-{i:05d}.parquet", [{"shard": i, "x": list(range(i))}]
        )
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# five shards\n")
    shards = {sha256(p.read_bytes()) for p in folder.rglob("*.parquet")}
    publish = f"""
        api = HfApi()
        api.create_repo({REPO!r}, repo_type="dataset", exist_ok=True)
        try:  # a publish script: upload, then tag the commit it made
            commit = api.upload_folder(folder_path={str(folder)!r}, repo_id={REPO!r},
                                       repo_type="dataset")
        except Exception as e:
            emit({{"error": type(e).__name__}})
        else:
            api.create_tag({REPO!r}, tag="v1.0.0", revision=commit.oid, repo_type="dataset")
            emit({{"commit": commit.oid}})
        """
    with start_hub_server(tmp_path / "hub", TOKEN, fail_after_lfs_uploads=2) as hub:
        out = run_client(hub, tmp_path / "client", publish)
        assert "error" in out
        assert hub.lfs_uploads == 2 and hub.failed_lfs_uploads >= 1
        assert hub.refs(REPO)["tags"] == {}
        assert hub.commits_created == 1  # only the repo's initial commit
        stored_first = set(hub.lfs_puts)

        hub.fail_after_lfs_uploads = None  # the storage is back
        out = run_client(hub, tmp_path / "client", publish)
        assert "commit" in out
        assert hub.refs(REPO)["tags"] == {"v1.0.0": out["commit"]}
        assert set(hub.lfs_puts) == shards and hub.lfs_uploads == 5
        assert all(n == 1 for n in hub.lfs_puts.values())  # the 2 stored first were not re-sent
        assert len(stored_first) == 2


def test_ndjson_commit_and_restart_on_the_same_root(tmp_path):
    """Commit without a client (inline file, deletion), then a new server reads the same root."""
    root = tmp_path / "hub"
    with start_hub_server(root, TOKEN) as hub:
        body = json.dumps({"name": "raw", "organization": "org", "type": "dataset"}).encode()
        assert http(hub, "POST", "/api/repos/create", data=body)[0] == 200
        assert http(hub, "POST", "/api/repos/create", data=body)[0] == 409
        lines = [
            {"key": "header", "value": {"summary": "add two", "description": ""}},
            {"key": "file", "value": {"path": "a.txt", "content": "YQ==", "encoding": "base64"}},
            {"key": "file", "value": {"path": "b/c.txt", "content": "Yw==", "encoding": "base64"}},
        ]
        ndjson = "".join(json.dumps(x) + "\n" for x in lines).encode()
        status, _, resp = http(hub, "POST", "/api/datasets/org/raw/commit/main", data=ndjson)
        assert status == 200
        first = json.loads(resp)["commitOid"]
        lines = [lines[0], {"key": "deletedFile", "value": {"path": "a.txt"}}]
        ndjson = "".join(json.dumps(x) + "\n" for x in lines).encode()
        status, _, resp = http(hub, "POST", "/api/datasets/org/raw/commit/main", data=ndjson)
        second = json.loads(resp)["commitOid"]
        assert (
            http(hub, "POST", "/api/datasets/org/raw/commit/main", token=None, data=ndjson)[0]
            == 401
        )
    with start_hub_server(root, TOKEN) as hub:
        status, _, body = http(hub, "GET", "/api/datasets/org/raw/refs", token=None)
        assert json.loads(body)["branches"][0]["targetCommit"] == second
        assert http(hub, "GET", f"/datasets/org/raw/resolve/{first}/a.txt")[2] == b"a"
        assert http(hub, "GET", "/datasets/org/raw/resolve/main/a.txt")[0] == 404
        assert http(hub, "GET", "/datasets/org/raw/resolve/main/b/c.txt")[2] == b"c"
