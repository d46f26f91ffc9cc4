"""A local server that speaks the Hugging Face Hub's HTTP API, as a test fixture.

The real `huggingface_hub` and `datasets` clients can publish to it (create a repo, upload files
through the preupload / LFS batch / commit routes, tag) and load from it (repo info, tree listings,
paths-info, `resolve` downloads with Range). No package serves the Hub's write routes, hence this
small stdlib server (`http.server.ThreadingHTTPServer`, bound to 127.0.0.1 on a free port).

Usage::

    token = secrets.token_hex(8)  # any string: the server accepts exactly this one
    with start_hub_server(tmp_path / "hub", token=token) as hub:
        env = hub.client_env(tmp_path / "client", token=token)
        subprocess.run([sys.executable, "-c", CLIENT_CODE], env=env, check=True)
        assert hub.lfs_uploads == 2

Pointing the clients at it: `huggingface_hub.constants` reads HF_ENDPOINT, HF_HOME,
HF_HUB_DISABLE_XET, HF_HUB_OFFLINE and friends once, when the package is first imported, and
`datasets.config` does the same. The server's port is only known once it runs, so the robust way
is to run the client code in a fresh subprocess whose environment is set before anything is
imported: `HubServer.client_env()` builds that environment (HF_ENDPOINT, a private HF_HOME and
HF_DATASETS_CACHE, HF_HUB_DISABLE_XET=1 so uploads take the LFS path rather than Xet, no offline
flags, no download-count ping to S3, NO_PROXY for 127.0.0.1). Setting the variables in-process
works only if no module of the test session imported `huggingface_hub` or `datasets` before.
The server itself runs in the test process, so its counters can be read directly.

Routes (`{type}`: `models`, `datasets` or `spaces`; `{prefix}`: ``, `datasets/` or `spaces/`;
`{rev}`: a branch, a tag, `refs/heads/..`, `refs/tags/..` or a commit sha, URL-encoded; `{repo}`:
`{ns}/{name}`):

    GET    /api/whoami-v2
    POST   /api/repos/create                  409 when the repo exists
    POST   /api/validate-yaml                 parses README front matter (if PyYAML is there)
    GET    /api/{type}/{repo}                 repo info at main: sha, siblings (?blobs=1: sizes)
    GET    /api/{type}/{repo}/revision/{rev}  the same at a revision
    GET    /api/{type}/{repo}/refs            branches, tags
    GET    /api/{type}/{repo}/tree/{rev}[/{path}]   ?recursive, ?expand, Link-header pages
    POST   /api/{type}/{repo}/paths-info/{rev}      form or JSON: paths, expand
    GET    /api/{type}/{repo}/commits/{rev}   first-parent history
    POST   /api/{type}/{repo}/preupload/{rev} upload mode (lfs/regular), shouldIgnore, oid
    POST   /api/{type}/{repo}/commit/{rev}    NDJSON: header, file, lfsFile, deletedFile/Folder
    POST   /api/{type}/{repo}/tag/{rev}       409 when the tag exists
    DELETE /api/{type}/{repo}/tag/{tag}
    POST   /api/{type}/{repo}/branch/{branch} 409 when the branch exists
    POST   /{prefix}{repo}.git/info/lfs/objects/batch   basic transfer; no actions if stored
    PUT    /{prefix}{repo}.git/info/lfs/objects/{oid}   the signed URL the batch hands out
    POST   /{prefix}{repo}.git/info/lfs/objects/verify
    GET|HEAD /{prefix}{repo}/resolve/{rev}/{path}       Range; ETag, X-Repo-Commit, X-Linked-*

Auth: a request with a wrong bearer token gets 401 (`X-Error-Message: Invalid credentials in
Authorization header`, as the Hub says it); without a token, public repos can be read; writes need
the token. The LFS PUT URL carries its own signature, as a storage URL does (the client sends no
token there).

Storage under `root`: `repos/{type}s/{ns}/{name}/repo.json` (refs, visibility) and
`.../commits/{sha}.json` (a snapshot: path -> git blob oid, size, sha256 for LFS files),
`blobs/{git oid}` (regular files), `lfs/{sha256}` (LFS objects). A new server on the same root
serves what an earlier one stored. Commit ids are sha1 hex strings but not real git commits.

Fault injection: `fail_after_lfs_uploads=N` answers every LFS PUT after the first N accepted ones
with `fail_status`. The default 507 is an error huggingface_hub does not retry: it retries 408,
429, 500, 502, 503 and 504 five times with 1-8 s pauses, which would make such a test last ~25 s.
Set `hub.fail_after_lfs_uploads = None` to let uploads through again. `lfs_put_delay=S`
(optional, default 0) makes every LFS PUT wait S seconds before it is stored, so that a test
can signal a client while its upload is under way.

Over 400 lines on purpose: one route table and its handlers, the smallest server the real
clients accept; splitting it would only scatter the protocol.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

USER = "tester"
LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
# What the Hub puts in a new repo's first commit (abridged).
LFS_EXTENSIONS = (
    "7z arrow bin bz2 ckpt gz h5 joblib lz4 mp3 mp4 msgpack npy npz onnx parquet pb pickle pkl pt"
    " pth safetensors tar tflite tgz wav webm xz zip zst"
)
DEFAULT_GITATTRIBUTES = "".join(
    f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n" for ext in LFS_EXTENSIONS.split(" ")
)
PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
URL_PREFIX_REV = {v: k for k, v in URL_PREFIX.items()}


class HubError(Exception):
    """An error answer: status, message, and the X-Error-Code the clients map to exceptions."""

    def __init__(self, status: int, message: str, code=None, headers=None, extra=None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers, self.extra = dict(headers or {}), dict(extra or {})


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob (what the Hub calls a regular file's `oid`)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Entry:
    """A file in a commit: git blob oid (of the pointer file for LFS files), size, LFS sha256."""

    oid: str
    size: int
    sha256: str | None = None

    @property
    def pointer(self) -> str:
        return LFS_POINTER.format(oid=self.sha256, size=self.size)

    def blob_path(self, root: Path) -> Path:
        return root / "lfs" / self.sha256 if self.sha256 else root / "blobs" / self.oid


@dataclass
class Commit:
    id: str
    parents: list[str]
    title: str
    message: str
    date: str
    files: dict[str, Entry]

    def to_json(self) -> dict:
        files = {p: [e.oid, e.size, e.sha256] for p, e in sorted(self.files.items())}
        return {**self.__dict__, "files": files}

    @classmethod
    def from_json(cls, d: dict) -> Commit:
        return cls(**{**d, "files": {p: Entry(*v) for p, v in d["files"].items()}})


@dataclass
class Repo:
    type: str
    id: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def meta(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "commits"}


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str  # raw path with query string
    status: int


def _hexdigest(data: bytes | str) -> str:
    return hashlib.sha1(data.encode() if isinstance(data, str) else data).hexdigest()


def _gitignore_match(patterns: list[str], path: str) -> bool:
    return any(fnmatchcase(path, p) or fnmatchcase(path.rsplit("/", 1)[-1], p) for p in patterns)


def _lines(text: str) -> list[str]:
    return [s.strip() for s in text.splitlines() if s.strip() and not s.lstrip().startswith("#")]


class HubServer:
    """The server: repos on disk under `root`, HTTP on 127.0.0.1, counters for tests.

    Counters: `requests` (every request: method, raw path, status), `lfs_puts` (sha256 -> accepted
    PUTs), `lfs_uploads` (their total), `failed_lfs_uploads` (PUTs refused by fault injection),
    `commits_created`. `lfs_objects()` lists the stored LFS objects, `refs(repo_id)` the refs.
    """

    def __init__(
        self,
        root: Path,
        token: str,
        *,
        lfs_threshold: int = 10 * 1024 * 1024,
        tree_page_size: int = 1000,
        fail_after_lfs_uploads: int | None = None,
        fail_status: int = 507,
        lfs_put_delay: float = 0.0,
    ):
        self.root, self.token = Path(root), token
        self.lfs_threshold, self.tree_page_size = lfs_threshold, tree_page_size
        self.fail_after_lfs_uploads, self.fail_status = fail_after_lfs_uploads, fail_status
        self.lfs_put_delay = lfs_put_delay
        self.requests: list[RequestRecord] = []
        self.lfs_puts: Counter[str] = Counter()
        self.failed_lfs_uploads = 0
        self.commits_created = 0
        self._lock = threading.RLock()
        self._secret = secrets.token_bytes(16)
        self._repos: dict[tuple[str, str], Repo] = {}
        for d in ("blobs", "lfs", "repos", "tmp"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        self._load()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self  # type: ignore[attr-defined]
        self.endpoint = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    # ---- lifecycle and test helpers --------------------------------------------------------
    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HubServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def lfs_uploads(self) -> int:
        return sum(self.lfs_puts.values())

    def lfs_objects(self) -> set[str]:
        return {p.name for p in (self.root / "lfs").iterdir()}

    def refs(self, repo_id: str, repo_type: str = "dataset") -> dict[str, dict[str, str]]:
        repo = self._repos[(repo_type, repo_id)]
        return {"branches": dict(repo.branches), "tags": dict(repo.tags)}

    def requests_matching(self, method: str, fragment: str) -> list[RequestRecord]:
        return [r for r in list(self.requests) if r.method == method and fragment in r.path]

    def client_env(self, home: Path, token: str | None = None) -> dict[str, str]:
        """A copy of os.environ for a client subprocess: this server, private caches, no Xet."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        for k in ("TRANSFORMERS_OFFLINE", "HUGGING_FACE_HUB_TOKEN"):
            env.pop(k, None)
        no_proxy = ",".join(x for x in ("127.0.0.1,localhost", env.get("NO_PROXY")) if x)
        env.update(
            HF_ENDPOINT=self.endpoint,
            HF_HOME=str(Path(home) / "hf_home"),
            HF_DATASETS_CACHE=str(Path(home) / "datasets_cache"),
            HF_HUB_DISABLE_XET="1",
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            HF_UPDATE_DOWNLOAD_COUNTS="0",
            NO_PROXY=no_proxy,
            no_proxy=no_proxy,
        )
        if token is not None:
            env["HF_TOKEN"] = token
        return env

    # ---- storage -----------------------------------------------------------------------------
    def _repo_dir(self, repo: Repo) -> Path:
        return self.root / "repos" / f"{repo.type}s" / repo.id

    def _load(self) -> None:
        for meta_path in sorted((self.root / "repos").glob("*/*/*/repo.json")):
            repo = Repo(**json.loads(meta_path.read_text()))
            for p in (meta_path.parent / "commits").glob("*.json"):
                commit = Commit.from_json(json.loads(p.read_text()))
                repo.commits[commit.id] = commit
            self._repos[(repo.type, repo.id)] = repo

    def _write(self, path: Path, data: bytes) -> None:
        if path.exists():  # content-addressed or immutable
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "tmp" / secrets.token_hex(8)
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def _save_meta(self, repo: Repo) -> None:
        path = self._repo_dir(repo) / "repo.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "tmp" / secrets.token_hex(8)
        tmp.write_text(json.dumps(repo.meta(), indent=1))
        os.replace(tmp, path)

    def _add_commit(self, repo: Repo, branch: str, title: str, message: str, files) -> Commit:
        parents = [repo.branches[branch]] if branch in repo.branches else []
        date = now_iso()
        cid = _hexdigest(json.dumps([repo.id, parents, title, message, date, len(repo.commits)]))
        commit = Commit(cid, parents, title, message, date, dict(files))
        body = json.dumps(commit.to_json(), indent=1).encode()
        self._write(self._repo_dir(repo) / "commits" / f"{cid}.json", body)
        repo.commits[cid] = commit
        repo.branches[branch] = cid
        self._save_meta(repo)
        self.commits_created += 1
        return commit

    def _read(self, entry: Entry) -> bytes:
        return entry.blob_path(self.root).read_bytes()

    # ---- lookups -----------------------------------------------------------------------------
    def _user(self, headers) -> str | None:
        auth = headers.get("Authorization")
        if auth is None:
            return None
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), self.token):
            return USER
        raise HubError(401, "Invalid credentials in Authorization header")

    def _repo(self, repo_type: str, ns: str, name: str, user: str | None, write=False) -> Repo:
        if write and user is None:
            raise HubError(401, "You must be authenticated to write to a repo", "RepoNotFound")
        repo = self._repos.get((repo_type, f"{ns}/{name}"))
        if repo is None or (repo.private and user is None):
            raise HubError(404 if user else 401, "Repository not found", "RepoNotFound")
        return repo

    def _resolve_rev(self, repo: Repo, rev: str) -> Commit:
        rev = unquote(rev)
        for name, refs in (("refs/heads/", repo.branches), ("refs/tags/", repo.tags)):
            short = rev.removeprefix(name)
            if short in refs:
                return repo.commits[refs[short]]
        if rev in repo.commits:
            return repo.commits[rev]
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def _branch(self, repo: Repo, rev: str) -> str:
        rev = unquote(rev).removeprefix("refs/heads/")
        if rev not in repo.branches:
            if rev in repo.tags or rev in repo.commits:
                raise HubError(400, f"Invalid rev id: {rev} is not a branch")
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return rev

    def _commit_url(self, repo: Repo, cid: str) -> str:
        return f"{self.endpoint}/{URL_PREFIX[repo.type]}{repo.id}/commit/{cid}"

    def _last_commit(self, repo: Repo, commit: Commit, path: str) -> Commit:
        """The newest first-parent ancestor of `commit` that changed `path` (a file or folder)."""

        def under(c: Commit | None) -> dict:
            if c is None:
                return {}
            return {p: e for p, e in c.files.items() if p == path or p.startswith(path + "/")}

        while True:
            parent = repo.commits[commit.parents[0]] if commit.parents else None
            if parent is None or under(parent) != under(commit):
                return commit
            commit = parent

    def _entry_json(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict:
        entry = commit.files.get(path)
        if entry is not None:
            out: dict = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
            if entry.sha256:
                ptr = len(entry.pointer.encode())
                out["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": ptr}
        else:
            inner = sorted((p, e.oid) for p, e in commit.files.items() if p.startswith(path + "/"))
            out = {"type": "directory", "oid": _hexdigest(json.dumps(inner)), "size": 0}
            out["path"] = path
        if expand:
            last = self._last_commit(repo, commit, path)
            out["lastCommit"] = {"id": last.id, "title": last.title, "date": last.date}
        return out

    @staticmethod
    def _is_dir(commit: Commit, path: str) -> bool:
        return any(p.startswith(path + "/") for p in commit.files)

    # ---- dispatch ----------------------------------------------------------------------------
    _REPO = r"(?P<ns>[^/]+)/(?P<name>[^/]+?)"
    _API = r"/api/(?P<type>models|datasets|spaces)/" + _REPO
    _GIT = r"/(?P<prefix>datasets/|spaces/|)" + _REPO
    ROUTES: ClassVar[list[tuple[tuple[str, ...], str, str]]] = [
        (("GET",), r"/api/whoami-v2", "whoami"),
        (("POST",), r"/api/repos/create", "create_repo"),
        (("POST",), r"/api/validate-yaml", "validate_yaml"),
        (("GET",), _API + r"(?:/revision/(?P<rev>[^/]+))?", "repo_info"),
        (("GET",), _API + r"/refs", "list_refs"),
        (("GET",), _API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree"),
        (("POST",), _API + r"/paths-info/(?P<rev>[^/]+)", "paths_info"),
        (("GET",), _API + r"/commits/(?P<rev>[^/]+)", "list_commits"),
        (("POST",), _API + r"/preupload/(?P<rev>[^/]+)", "preupload"),
        (("POST",), _API + r"/commit/(?P<rev>[^/]+)", "commit"),
        (("POST",), _API + r"/tag/(?P<rev>[^/]+)", "create_tag"),
        (("DELETE",), _API + r"/tag/(?P<rev>[^/]+)", "delete_tag"),
        (("POST",), _API + r"/branch/(?P<rev>[^/]+)", "create_branch"),
        (("POST",), _GIT + r"\.git/info/lfs/objects/batch", "lfs_batch"),
        (("POST",), _GIT + r"\.git/info/lfs/objects/verify", "lfs_verify"),
        (("PUT",), _GIT + r"\.git/info/lfs/objects/(?P<oid>[0-9a-f]{64})", "lfs_put"),
        (("GET", "HEAD"), _GIT + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve_file"),
    ]
    _COMPILED: ClassVar[list] = [(methods, re.compile(rx), name) for methods, rx, name in ROUTES]

    def handle(self, method: str, raw_path: str, headers, body: bytes):
        """Answer one request: returns (status, headers, body bytes)."""
        url = urlsplit(raw_path)
        query = parse_qs(url.query)
        user = self._user(headers)  # a wrong token is refused on every route
        for methods, rx, name in self._COMPILED:
            m = rx.fullmatch(url.path)
            if m and method in methods:
                args = {k: v for k, v in m.groupdict().items() if v is not None}
                if "prefix" in args:
                    args["type"] = URL_PREFIX_REV[args.pop("prefix")]
                elif "type" in args:
                    args["type"] = PLURAL[args["type"]]
                if name == "lfs_put" and self.lfs_put_delay:
                    time.sleep(self.lfs_put_delay)  # slow storage (outside the lock)
                with self._lock:
                    return getattr(self, "_" + name)(
                        user=user,
                        query=query,
                        headers=headers,
                        body=body,
                        url=url,
                        method=method,
                        **args,
                    )
        raise HubError(404, f"No route for {method} {url.path}")

    # ---- account and repos -------------------------------------------------------------------
    def _whoami(self, user, **_):
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        token = {"displayName": "tests", "role": "write", "createdAt": now_iso()}
        return 200, {}, {
            "type": "user", "id": _hexdigest(user)[:24], "name": user, "fullname": "Test User",
            "email": None, "emailVerified": True, "canPay": False, "isPro": False, "orgs": [],
            "auth": {"type": "access_token", "accessToken": token},
        }  # fmt: skip

    def _create_repo(self, user, body, **_):
        if user is None:
            raise HubError(401, "You must be authenticated to create a repo")
        d = json.loads(body or b"{}")
        repo_type = d.get("type") or "model"
        repo_id = f"{d.get('organization') or user}/{d['name']}"
        url = f"{self.endpoint}/{URL_PREFIX[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self._repos:
            # the client reads "url" from this answer when exist_ok=True
            raise HubError(409, f"You already created this {repo_type} repo", extra={"url": url})
        private = bool(d.get("private")) or d.get("visibility") in ("private", "protected")
        repo = Repo(repo_type, repo_id, private, now_iso())
        gitattributes = DEFAULT_GITATTRIBUTES.encode()
        oid = git_blob_oid(gitattributes)
        self._write(self.root / "blobs" / oid, gitattributes)
        files = {".gitattributes": Entry(oid, len(gitattributes))}
        self._add_commit(repo, "main", "initial commit", "", files)
        self._repos[(repo_type, repo_id)] = repo
        return 200, {}, {"url": url, "name": repo_id, "id": _hexdigest(repo_id)[:24]}

    def _validate_yaml(self, body, **_):
        content = json.loads(body or b"{}").get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
        if match:
            try:
                import yaml  # optional: only to refuse broken front matter, as the Hub does
            except ImportError:
                yaml = None
            if yaml is not None:
                try:
                    yaml.safe_load(match.group(1))
                except yaml.YAMLError as e:
                    return 400, {}, {"errors": [{"message": f"Invalid YAML: {e}"}], "warnings": []}
        return 200, {}, {"errors": [], "warnings": []}

    def _repo_info(self, user, type, ns, name, query, rev="main", **_):
        repo = self._repo(type, ns, name, user)
        commit = self._resolve_rev(repo, rev)
        blobs = query.get("blobs", ["false"])[0].lower() in ("1", "true")
        siblings = []
        for path, e in sorted(commit.files.items()):
            sib: dict = {"rfilename": path}
            if blobs:
                sib.update(size=e.size, blobId=e.oid)
                if e.sha256:
                    sib["lfs"] = {"sha256": e.sha256, "size": e.size, "pointerSize": len(e.pointer)}
            siblings.append(sib)
        info = {
            "_id": _hexdigest(repo.id)[:24], "id": repo.id, "author": ns, "sha": commit.id,
            "lastModified": commit.date, "createdAt": repo.created_at, "private": repo.private,
            "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
            "siblings": siblings, "usedStorage": sum(e.size for e in commit.files.values()),
        }  # fmt: skip
        if type == "model":
            info["modelId"] = repo.id
        return 200, {}, info

    def _list_refs(self, user, type, ns, name, query, **_):
        repo = self._repo(type, ns, name, user)

        def refs(kind, d):
            return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": c} for n, c in d.items()]

        out = {
            "branches": refs("heads", repo.branches),
            "converts": [],
            "tags": refs("tags", repo.tags),
        }
        if query.get("include_prs"):
            out["pullRequests"] = []
        return 200, {}, out

    def _list_commits(self, user, type, ns, name, rev, **_):
        repo = self._repo(type, ns, name, user)
        commit, out = self._resolve_rev(repo, rev), []
        while True:
            out.append({"id": commit.id, "title": commit.title, "message": commit.message,
                        "date": commit.date, "authors": [{"user": USER}]})  # fmt: skip
            if not commit.parents:
                return 200, {}, out
            commit = repo.commits[commit.parents[0]]

    # ---- reads -------------------------------------------------------------------------------
    def _tree(self, user, type, ns, name, rev, query, url, path="", **_):
        repo = self._repo(type, ns, name, user)
        commit = self._resolve_rev(repo, rev)
        path = unquote(path).strip("/")
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        expand = query.get("expand", ["false"])[0].lower() in ("1", "true")
        if path in commit.files:
            paths = [path]
        elif path and not self._is_dir(commit, path):
            hdr = {"X-Repo-Commit": commit.id}
            raise HubError(404, f"{path} does not exist on {rev}", "EntryNotFound", hdr)
        else:
            found: set[str] = set()
            base = path + "/" if path else ""
            for p in commit.files:
                if not p.startswith(base):
                    continue
                parts = p[len(base) :].split("/")
                depth = len(parts) if recursive else 1
                found.update(base + "/".join(parts[: i + 1]) for i in range(depth))
            paths = sorted(found, key=lambda p: (p.count("/"), p not in commit.files, p))
        page = min(self.tree_page_size, 50) if expand else self.tree_page_size
        start = int(query.get("cursor", ["0"])[0])
        items = [self._entry_json(repo, commit, p, expand) for p in paths[start : start + page]]
        headers = {}
        if start + page < len(paths):
            q = urlencode({**{k: v[0] for k, v in query.items()}, "cursor": start + page})
            headers["Link"] = f'<{self.endpoint}{url.path}?{q}>; rel="next"'
        return 200, headers, items

    def _paths_info(self, user, type, ns, name, rev, headers, body, **_):
        repo = self._repo(type, ns, name, user)
        commit = self._resolve_rev(repo, rev)
        if "json" in (headers.get("Content-Type") or ""):
            d = json.loads(body or b"{}")
            paths, expand = d.get("paths", []), bool(d.get("expand"))
        else:
            form = parse_qs(body.decode())
            paths = form.get("paths", [])
            expand = form.get("expand", ["false"])[0].lower() in ("1", "true")
        out = []
        for p in [p.strip("/") for p in ([paths] if isinstance(paths, str) else paths)]:
            if p in commit.files or (p and self._is_dir(commit, p)):
                out.append(self._entry_json(repo, commit, p, expand))
        return 200, {}, out

    def _resolve_file(self, user, type, ns, name, rev, path, headers, method, **_):
        repo = self._repo(type, ns, name, user)
        commit = self._resolve_rev(repo, rev)
        path = unquote(path)
        entry = commit.files.get(path)
        base = {"X-Repo-Commit": commit.id, "Accept-Ranges": "bytes"}
        if entry is None:
            raise HubError(404, "Entry not found", "EntryNotFound", base)
        base["ETag"] = f'"{entry.sha256 or entry.oid}"'
        base["Content-Type"] = "application/octet-stream"
        if entry.sha256:
            base.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
        start, end = 0, entry.size - 1
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", headers.get("Range") or "")
        status = 200
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), entry.size - 1) if m.group(2) else entry.size - 1
            else:  # suffix range: the last N bytes
                start = max(entry.size - int(m.group(2)), 0)
            if start > end or start >= entry.size:
                base["Content-Range"] = f"bytes */{entry.size}"
                raise HubError(416, "Range not satisfiable", headers=base)
            status = 206
            base["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
        base["Content-Length"] = str(end - start + 1)
        if method == "HEAD":
            return status, base, b""
        with open(entry.blob_path(self.root), "rb") as f:
            f.seek(start)
            return status, base, f.read(end - start + 1)

    # ---- writes ------------------------------------------------------------------------------
    def _lfs_patterns(self, commit: Commit) -> list[str]:
        entry = commit.files.get(".gitattributes")
        text = self._read(entry).decode() if entry else ""
        return [ln.split()[0] for ln in _lines(text) if "filter=lfs" in ln.split()[1:]]

    def _preupload(self, user, type, ns, name, rev, query, body, **_):
        repo = self._repo(type, ns, name, user, write=True)
        if query.get("create_pr"):
            raise HubError(400, "create_pr is not supported by this test server")
        commit = self._resolve_rev(repo, rev)
        d = json.loads(body or b"{}")
        lfs_patterns = self._lfs_patterns(commit)
        gitignore = d.get("gitIgnore")
        if gitignore is None and ".gitignore" in commit.files:
            gitignore = self._read(commit.files[".gitignore"]).decode()
        ignore = _lines(gitignore or "")
        out = []
        for f in d.get("files", []):
            path, size = f["path"], int(f["size"])
            sample = base64.b64decode(f.get("sample") or "")
            lfs = (
                _gitignore_match(lfs_patterns, path) or size > self.lfs_threshold or b"\0" in sample
            )
            info = {"path": path, "uploadMode": "lfs" if lfs else "regular"}
            info["shouldIgnore"] = _gitignore_match(ignore, path)
            remote = commit.files.get(path)
            if remote is not None:  # what the client compares with its own: sha256 or git oid
                info["oid"] = remote.sha256 or remote.oid
            out.append(info)
        return 200, {}, {"files": out, "commitOid": commit.id}

    def _sign(self, repo: Repo, oid: str, size: int) -> str:
        msg = f"{repo.type}/{repo.id}/{oid}/{size}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]

    def _lfs_batch(self, user, type, ns, name, body, **_):
        repo = self._repo(type, ns, name, user, write=True)
        d = json.loads(body or b"{}")
        if d.get("operation") != "upload":
            raise HubError(400, "Only the LFS 'upload' operation is served here")
        base = f"{self.endpoint}/{URL_PREFIX[repo.type]}{repo.id}.git/info/lfs/objects"
        objects = []
        for obj in d.get("objects", []):
            oid, size = str(obj.get("oid")), int(obj.get("size", -1))
            stored = self.root / "lfs" / oid
            if not re.fullmatch(r"[0-9a-f]{64}", oid) or size < 0:
                objects.append({**obj, "error": {"code": 422, "message": "Invalid oid or size"}})
            elif stored.exists() and stored.stat().st_size == size:
                objects.append({"oid": oid, "size": size})  # already there: nothing to send
            else:
                qs = urlencode({"size": size, "sig": self._sign(repo, oid, size)})
                actions = {"upload": {"href": f"{base}/{oid}?{qs}", "header": {}}}
                actions["verify"] = {"href": f"{base}/verify", "header": {}}
                objects.append(
                    {"oid": oid, "size": size, "authenticated": True, "actions": actions}
                )
        ctype = {"Content-Type": "application/vnd.git-lfs+json"}
        return 200, ctype, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}

    def _lfs_put(self, type, ns, name, oid, query, body, **_):
        repo = self._repos.get((type, f"{ns}/{name}"))
        size = int(query.get("size", ["-1"])[0])
        sig = query.get("sig", [""])[0]
        if repo is None or not hmac.compare_digest(sig, self._sign(repo, oid, size)):
            raise HubError(403, "Invalid or missing upload signature")
        limit = self.fail_after_lfs_uploads
        if limit is not None and self.lfs_uploads >= limit:
            self.failed_lfs_uploads += 1
            raise HubError(self.fail_status, "Injected failure: the storage refused the upload")
        if len(body) != size or hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, "Uploaded content does not match the announced oid and size")
        self._write(self.root / "lfs" / oid, body)
        self.lfs_puts[oid] += 1
        return 200, {}, b""

    def _lfs_verify(self, user, type, ns, name, body, **_):
        self._repo(type, ns, name, user, write=True)
        d = json.loads(body or b"{}")
        stored = self.root / "lfs" / str(d.get("oid"))
        if not stored.exists() or stored.stat().st_size != d.get("size"):
            raise HubError(404, "LFS object not found")
        return 200, {}, {"message": "Object verified"}

    def _commit(self, user, type, ns, name, rev, query, body, **_):
        repo = self._repo(type, ns, name, user, write=True)
        if query.get("create_pr"):
            raise HubError(400, "create_pr is not supported by this test server")
        branch = self._branch(repo, rev)
        head = repo.commits[repo.branches[branch]]
        lines = [json.loads(ln) for ln in body.splitlines() if ln.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The first NDJSON line must be the header")
        header = lines[0]["value"]
        parent = header.get("parentCommit")
        if parent and not head.id.startswith(parent):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for op in lines[1:]:
            key, value = op.get("key"), op.get("value", {})
            path = str(value.get("path", ""))
            if not path or path.startswith("/") or ".." in path.split("/"):
                raise HubError(400, f"Invalid path: {path!r}")
            if key == "file":
                raw = value.get("content", "")
                b64 = value.get("encoding") == "base64"
                data = base64.b64decode(raw) if b64 else raw.encode()
                oid = git_blob_oid(data)
                self._write(self.root / "blobs" / oid, data)
                files[path] = Entry(oid, len(data))
            elif key == "lfsFile":
                sha = str(value.get("oid"))
                stored = self.root / "lfs" / sha
                if not re.fullmatch(r"[0-9a-f]{64}", sha) or not stored.exists():
                    raise HubError(400, f"LFS object {sha} for {path} was never uploaded")
                size = stored.stat().st_size
                pointer = LFS_POINTER.format(oid=sha, size=size).encode()
                files[path] = Entry(git_blob_oid(pointer), size, sha)
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
            elif key == "deletedFolder":
                gone = [p for p in files if p.startswith(path.rstrip("/") + "/")]
                if not gone:
                    raise HubError(404, "A folder with this name doesn't exist", "EntryNotFound")
                for p in gone:
                    del files[p]
            else:
                raise HubError(400, f"Unknown NDJSON key: {key!r}")
        commit = self._add_commit(
            repo, branch, header.get("summary") or "Commit", header.get("description", ""), files
        )
        url = self._commit_url(repo, commit.id)
        return 200, {}, {"success": True, "commitOid": commit.id, "commitUrl": url,
                         "hookOutput": "", "pullRequestUrl": None}  # fmt: skip

    def _create_tag(self, user, type, ns, name, rev, body, **_):
        repo = self._repo(type, ns, name, user, write=True)
        commit = self._resolve_rev(repo, rev)
        tag = json.loads(body or b"{}").get("tag")
        if not tag:
            raise HubError(400, "Missing tag name")
        if tag in repo.tags:
            raise HubError(409, f"Tag {tag} already exists")
        repo.tags[tag] = commit.id
        self._save_meta(repo)
        return 200, {}, {"name": tag, "ref": f"refs/tags/{tag}", "targetCommit": commit.id}

    def _delete_tag(self, user, type, ns, name, rev, **_):
        repo = self._repo(type, ns, name, user, write=True)
        if repo.tags.pop(unquote(rev).removeprefix("refs/tags/"), None) is None:
            raise HubError(404, f"Invalid rev id: {unquote(rev)}", "RevisionNotFound")
        self._save_meta(repo)
        return 200, {}, {}

    def _create_branch(self, user, type, ns, name, rev, body, **_):
        repo = self._repo(type, ns, name, user, write=True)
        branch = unquote(rev)
        if branch in repo.branches:
            raise HubError(409, f"Branch {branch} already exists")
        start = json.loads(body or b"{}").get("startingPoint") or "main"
        repo.branches[branch] = self._resolve_rev(repo, start).id
        self._save_meta(repo)
        return 200, {}, {}


class _Handler(BaseHTTPRequestHandler):
    """HTTP transport: reads the body (Content-Length or chunked), asks the hub, writes back."""

    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1.0"

    def log_message(self, format, *args):  # quiet: tests read `hub.requests` instead
        pass

    def _read_body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        hub: HubServer = self.server.hub  # type: ignore[attr-defined]
        body = self._read_body()
        try:
            status, headers, payload = hub.handle(self.command, self.path, self.headers, body)
        except HubError as e:
            status, headers, payload = e.status, dict(e.headers), {"error": e.message, **e.extra}
            headers["X-Error-Message"] = e.message
            if e.code:
                headers["X-Error-Code"] = e.code
        except Exception as e:  # a bug in this server: say it, do not hang the client
            status, headers, payload = 500, {}, {"error": f"{type(e).__name__}: {e}"}
        if not isinstance(payload, bytes):
            payload = json.dumps(payload).encode()
            headers.setdefault("Content-Type", "application/json")
        hub.requests.append(RequestRecord(self.command, self.path, status))
        self.send_response(status)
        headers.setdefault("Content-Length", str(len(payload)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch


def start_hub_server(root: Path, token: str, **options) -> HubServer:
    """Start a `HubServer` storing under `root` and accepting `token`; see `HubServer` options."""
    return HubServer(root, token, **options)


__all__ = ["HubError", "HubServer", "RequestRecord", "git_blob_oid", "start_hub_server"]
