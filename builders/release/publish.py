"""`autodrive publish`: a build folder -> a versioned dataset on the Hub, or a local folder.

In: a build folder, a semantic version, and a target: a Hub dataset repo (`ORG/NAME`)
or a local folder (`--to FOLDER`, which gets `FOLDER/vX.Y.Z/`). Out: the release
(release.py: its files, card and changelog), uploaded and tagged `vX.Y.Z`.

The order is the contract, written down as a plan before anything runs (`hub_plan`,
`local_plan`: pure functions, printed by `--dry-run`, which touches no network):

1. refuse a version that is not semver, or whose tag already exists (before any upload);
2. read the token the way `huggingface_hub` does (`get_token()`: HF_TOKEN, then the
   saved login); it is passed to `HfApi`, never printed;
3. changelog against the newest release below this one; stage the release folder;
4. create the dataset repo if needed; upload with `upload_large_folder` where the
   installed `huggingface_hub` has it, else `upload_folder` (from 1.x on it is the same
   resumable, multi-commit upload, over Xet): both skip files already on the Hub and
   resume by re-running the same command;
5. delete files on the Hub that the release no longer has;
6. verify that the head commit holds every file of the release with the local content
   (size and sha256 of LFS files, git blob id of the others: builders/release/remote.py)
   and with the sha256 the release's `SHA256SUMS` records (checksums.py; the staged
   files are hard links into the build, so a build file changed after staging shows
   here), and only then tag that commit. Any failure stops the run with a message saying what
   happened and that no tag was made; nothing is ever tagged half-uploaded.

What it prints (`PublishResult.format`): the steps, and for the steps that move files a
summary (how many, their size, how many under each top folder, the first few); every
file with `verbose` (`autodrive publish -v`): a release at the paper's size has about
53,000. URLs name the Hub that `huggingface_hub` talks to (`HF_ENDPOINT`).

Over 400 lines: the plan and the two targets it runs (Hub, folder) are kept in one file,
so the order above reads in one place; staging, verification and the Hub checks are in
their own modules.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.files import file_sha256
from vlm_autodrive.builders.release.changelog import Changelog, download_hub_version
from vlm_autodrive.builders.release.checksums import SHA256SUMS, read_sums
from vlm_autodrive.builders.release.readonly import mark_release
from vlm_autodrive.builders.release.remote import compare_files, remote_files
from vlm_autodrive.builders.release.semver import (
    Version,
    parse_version,
    previous_version,
    version_from_tag,
)
from vlm_autodrive.builders.release.staging import (
    GENERATED,
    STAGING,
    ReleaseError,
    ReleaseFiles,
    local_versions,
    release_files,
    stage_release,
    write_local_release,
)
from vlm_autodrive.builders.release.verify import check_recorded

REPO_TYPE = "dataset"
SHOWN_FILES = 5  # files a step lists without verbose


class PublishError(RuntimeError):
    """A publish that stopped; the message says what happened and what was not done."""


@dataclass(frozen=True)
class Op:
    """One step of a publish plan: its kind, what it acts on, and the files it moves."""

    kind: str
    target: str
    detail: str = ""
    files: tuple[str, ...] = ()
    size: int = 0  # bytes of `files`, when known

    def describe(self, verbose: bool = False) -> str:
        """The step in one line; with files, a summary and the first few (all: verbose)."""
        head = f"{self.kind:<10}{self.target}" + (f": {self.detail}" if self.detail else "")
        if not self.files:
            return head
        pad = " " * 12
        shown = self.files if verbose else self.files[:SHOWN_FILES]
        lines = [head, pad + files_summary(self.files, self.size)]
        lines += [pad + f for f in shown]
        if len(shown) < len(self.files):
            lines.append(f"{pad}... and {len(self.files) - len(shown)} more (all with -v)")
        return "\n".join(lines)


def files_summary(files: tuple[str, ...] | list[str], size: int = 0) -> str:
    """`57 files, 1.2 MB: 40 clips/, 12 data/, 1 split/, 4 at the top`."""
    tops = Counter(f.split("/", 1)[0] + "/" if "/" in f else "" for f in files)
    parts = [f"{n} {top}" for top, n in sorted(tops.items()) if top]
    if tops.get(""):
        parts.append(f"{tops['']} at the top")
    mb = f", {size / 1e6:.1f} MB" if size else ""
    return f"{len(files)} files{mb}: " + ", ".join(parts)


def hub_url(path: str) -> str:
    """`path` on the Hub that huggingface_hub uses: HF_ENDPOINT, else huggingface.co."""
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except ImportError:  # the publish extra is not installed: a dry run still works
        endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    return f"{endpoint.rstrip('/')}/{path}"


@dataclass
class PublishResult:
    """What a publish did (or, for a dry run, would do)."""

    plan: list[Op]
    dry_run: bool
    version: str
    where: str
    changelog: Changelog | None = None
    notes: list[str] = field(default_factory=list)

    def format(self, verbose: bool = False) -> str:
        """What to print: the steps, with a summary of their files (every file: verbose)."""
        verb = "would publish" if self.dry_run else "published"
        lines = [f"{verb} v{self.version} -> {self.where}"]
        if self.dry_run:
            lines.append("dry run: nothing read from or sent to the network, nothing written")
        lines += [f"{i:>3}. {op.describe(verbose)}" for i, op in enumerate(self.plan, 1)]
        if self.changelog is not None:
            lines.append("changelog:\n" + self.changelog.to_markdown(max_ids=5))
        lines += self.notes
        return "\n".join(lines)


def hub_plan(repo: str, version: Version, rf: ReleaseFiles, *, private: bool = False) -> list[Op]:
    """The steps of a Hub publish, in order (a pure function: no network)."""
    staged = rf.build_dir / STAGING / version.tag
    files = tuple(rf.all_paths)
    mb = rf.size / 1e6
    return [
        Op("token", "huggingface_hub.get_token()", "HF_TOKEN or the saved login; never printed"),
        Op("check", f"datasets/{repo}", f"tag {version.tag} must not exist (else refuse)"),
        Op("changelog", f"datasets/{repo}", f"against the newest release tag below {version.tag}"),
        Op(
            "stage",
            str(staged),
            f"{len(rf.files)} files ({mb:.1f} MB, hard links) + {', '.join(GENERATED)} "
            "written for this release",
        ),
        Op("create", f"datasets/{repo}", f"if missing (private: {'yes' if private else 'no'})"),
        Op(
            "upload",
            f"datasets/{repo}",
            f"{len(files)} files, resumable; files already on the Hub are not sent",
            files,
            rf.size,
        ),
        Op("delete", f"datasets/{repo}", "files on the Hub that this release does not have"),
        Op(
            "verify",
            f"datasets/{repo}",
            "the head commit holds every file above, same size and sha256, as SHA256SUMS "
            "records them (else no tag)",
        ),
        Op("tag", f"datasets/{repo}", f"{version.tag} at that commit"),
    ]


def local_plan(root: Path, version: Version, rf: ReleaseFiles) -> list[Op]:
    """The steps of a publish to a local folder, in order (a pure function)."""
    final = Path(root) / version.tag
    tmp = Path(root) / f".{version.tag}.partial"
    return [
        Op("check", str(final), f"must not exist (else refuse: {version} is published)"),
        Op("changelog", str(root), f"against the newest vX.Y.Z folder below {version.tag}"),
        Op(
            "copy",
            str(tmp),
            f"{len(rf.files)} files ({rf.size / 1e6:.1f} MB)",
            tuple(rf.files),
            rf.size,
        ),
        Op(
            "write",
            str(tmp),
            "the release's card, provenance, changelog, license and SHA256SUMS",
            GENERATED,
        ),
        Op("rename", str(final), f"from {tmp.name}, once every file is there"),
    ]


def publish(
    build_dir: str | Path,
    version: str,
    *,
    repo: str | None = None,
    to: str | Path | None = None,
    dry_run: bool = False,
    private: bool = False,
    license: str = "other",
    previous: str | Path | None = None,
    api: Any = None,
    allow_older: bool = False,
) -> PublishResult:
    """Publish `build_dir` as `version` to the Hub (`repo`) or a local folder (`to`).

    `previous` (a release folder) overrides what the changelog compares with. `api`
    replaces `HfApi` (tests). Raises ValueError for bad arguments or a build that is not
    ready (nothing done), PublishError when a step fails (no tag made). A version lower
    than the newest one already published there is refused (ReleaseError) unless
    `allow_older`: a fix of an older line (0.1.1 after 0.2.0) is deliberate, a typo is not.
    """
    v = parse_version(version)  # before anything else, as promised
    if to is None and not repo:
        raise ValueError("give --repo ORG/NAME (the Hub) or --to FOLDER (a local target)")
    if repo is not None and repo.count("/") != 1:
        raise ValueError(f"--repo {repo!r}: expected ORG/NAME")
    rf = release_files(Path(build_dir))
    # stale stages, altered files; the clips' recorded hashes, now verified, for SHA256SUMS
    rf.sha256.update(check_recorded(rf.build_dir, rf.files, rf.prov))
    prev_override = _previous_folder(previous) if previous else None
    if to is not None:
        return _publish_local(rf, Path(to), v, repo, license, prev_override, dry_run, allow_older)
    plan = hub_plan(repo, v, rf, private=private)
    if dry_run:
        return PublishResult(plan, True, str(v), hub_url(f"datasets/{repo}"))
    hub = HubPublisher(repo, v, rf, license, private, prev_override, api)
    hub.allow_older = allow_older
    return hub.run(plan)


def _previous_folder(previous: str | Path) -> tuple[str, Path]:
    """(name, folder) of `--previous`, which must be a release folder with data files."""
    path = Path(previous)
    if not path.is_dir():
        raise ReleaseError(f"--previous {path}: no such folder (give an earlier release folder)")
    if not any((path / "data").glob("*/*.parquet")):
        raise ReleaseError(
            f"--previous {path}: not a release folder (no data/<config>/*.parquet in it)"
        )
    return path.name, path


def _publish_local(
    rf, root, v, repo, license, prev_override, dry_run, allow_older=False
) -> PublishResult:
    plan = local_plan(root, v, rf)
    existing = local_versions(root)
    if v in existing:
        raise ReleaseError(f"{root / v.tag} exists: version {v} is already published there")
    if not allow_older:
        refuse_older(v, list(existing), str(root))
    if dry_run:
        return PublishResult(plan, True, str(v), str(root / v.tag))
    prev = previous_version(v, list(existing))
    previous = prev_override or ((str(prev), existing[prev]) if prev else None)
    root.mkdir(parents=True, exist_ok=True)
    final, log = write_local_release(rf, root, v, repo=repo, license=license, previous=previous)
    mark_release(final, str(v))  # read-only to build, mix, ingest, chunk, publish
    notes = [f'load it with: datasets.load_dataset("{final}", "<config>")']
    return PublishResult(plan, False, str(v), str(final), log, notes)


def refuse_older(version: Version, existing: list[Version], where: str) -> None:
    """ReleaseError (exit 2) when `version` is below the newest of `existing`."""
    newest = max(existing, key=Version.key, default=None)
    if newest is not None and version.key() < newest.key():
        raise ReleaseError(
            f"{where}: version {version} is lower than the newest release there, {newest}. "
            "To publish a fix of an older line (e.g. 0.1.1 after 0.2.0) on purpose, add "
            "--allow-older; otherwise publish a version above "
            f"{newest}. Nothing was published."
        )


class HubPublisher:
    """Runs a `hub_plan` against the Hub, one method per step kind."""

    allow_older = False  # publish below the newest tag (refuse_older)

    def __init__(self, repo, version, rf, license, private, prev_override, api=None):
        self.repo, self.version, self.rf = repo, version, rf
        self.license, self.private, self.prev_override = license, private, prev_override
        self.api, self.token = api, None
        self.staged = rf.build_dir / STAGING / version.tag
        self.uploading = False
        self.changelog: Changelog | None = None
        self.previous: tuple[str, Path] | None = None
        self.head: str | None = None

    def run(self, plan: list[Op]) -> PublishResult:
        for op in plan:
            try:
                getattr(self, f"_{op.kind}")(op)
            except (PublishError, ReleaseError):
                raise
            except Exception as e:
                raise PublishError(self._explain(op, e)) from None
        url = hub_url(f"datasets/{self.repo}/tree/{self.version.tag}")
        notes = [f'load it with: datasets.load_dataset("{self.repo}", "<config>", '
                 f'revision="{self.version.tag}")']  # fmt: skip
        return PublishResult(plan, False, str(self.version), url, self.changelog, notes)

    def _token(self, op: Op) -> None:
        from huggingface_hub import HfApi, get_token

        self.token = get_token()
        if not self.token:
            raise PublishError(
                "no Hugging Face token: set HF_TOKEN or run `hf auth login` (a token with "
                "write access). Nothing was uploaded and no tag was made."
            )
        if self.api is None:
            self.api = HfApi(token=self.token)

    def _check(self, op: Op) -> None:
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            refs = self.api.list_repo_refs(self.repo, repo_type=REPO_TYPE)
            tags = [t.name for t in refs.tags]
        except RepositoryNotFoundError:
            tags = []  # a new repo (or one this token cannot see: create will say)
        if self.version.tag in tags:  # bad input (exit 2), as an existing --to version
            raise ReleaseError(
                f"datasets/{self.repo} already has tag {self.version.tag}: a published version "
                "is never replaced. Publish a new version (e.g. bump the patch or minor "
                "number). Nothing was uploaded."
            )
        versions = [v for v in map(version_from_tag, tags) if v is not None]
        if not self.allow_older:
            refuse_older(self.version, versions, f"datasets/{self.repo}")
        prev = previous_version(self.version, versions)
        if prev is not None:
            self.previous = (str(prev), None)

    def _changelog(self, op: Op) -> None:
        if self.prev_override is not None:
            self.previous = self.prev_override
        elif self.previous is not None:
            tag = f"v{self.previous[0]}"
            self.previous = (self.previous[0], download_hub_version(self.repo, tag, self.token))

    def _stage(self, op: Op) -> None:
        self.changelog = stage_release(
            self.rf, self.staged, self.version, repo=self.repo, license=self.license,
            previous=self.previous, link=True,
        )  # fmt: skip

    def _create(self, op: Op) -> None:
        self.api.create_repo(
            self.repo, repo_type=REPO_TYPE, exist_ok=True, private=self.private or None
        )

    def _upload(self, op: Op) -> None:
        self.uploading = True
        message = f"Release {self.version.tag}"
        if hasattr(self.api, "upload_large_folder"):
            self.api.upload_large_folder(
                repo_id=self.repo, folder_path=self.staged, repo_type=REPO_TYPE
            )
        else:
            self.api.upload_folder(
                repo_id=self.repo, folder_path=self.staged, repo_type=REPO_TYPE,
                commit_message=message,
            )  # fmt: skip

    def _delete(self, op: Op) -> None:
        from huggingface_hub import CommitOperationDelete

        remote = set(self.api.list_repo_files(self.repo, repo_type=REPO_TYPE))
        stale = sorted(remote - set(self.rf.all_paths) - {".gitattributes"})
        if stale:
            self.api.create_commit(
                self.repo,
                repo_type=REPO_TYPE,
                operations=[CommitOperationDelete(path_in_repo=p) for p in stale],
                commit_message=f"Release {self.version.tag}: remove {len(stale)} files",
            )

    def _verify(self, op: Op) -> None:
        self.head = self.api.repo_info(self.repo, repo_type=REPO_TYPE).sha
        remote = remote_files(self.api, self.repo, self.head)
        bad = compare_files(self.staged, self.rf.all_paths, remote) or self._unlike_sums(remote)
        if bad:
            raise PublishError(
                f"the Hub's head commit {self.head[:12]} does not hold this release: "
                f"{len(bad)} files differ from the local ones ({'; '.join(bad[:3])}); run "
                "the same command again to resume the upload. No tag was made."
            )

    def _unlike_sums(self, remote: dict[str, tuple[int, str | None, str]]) -> list[str]:
        """Files on the Hub whose sha256 is not the one SHA256SUMS records (the staged
        files are hard links: a build file changed after staging would be in the upload
        but not in the sums). LFS files by the Hub's sha256, small ones by their bytes."""
        bad = []
        for rel, sha in read_sums(self.staged).items():
            lfs = remote[rel][1] if rel in remote else None
            if (lfs or file_sha256(self.staged / rel)) != sha:
                bad.append(f"{rel} is not the file {SHA256SUMS} records")
        return bad

    def _tag(self, op: Op) -> None:
        self.api.create_tag(
            self.repo,
            tag=self.version.tag,
            revision=self.head,
            repo_type=REPO_TYPE,
            tag_message=f"vlm-autodrive dataset release {self.version}",
        )
        # The staged copy (hard links, the uploader's resume state) served its purpose.
        shutil.rmtree(self.staged, ignore_errors=True)

    def _explain(self, op: Op, e: Exception) -> str:
        from huggingface_hub import constants

        status = getattr(getattr(e, "response", None), "status_code", None)
        names = {c.__name__ for c in type(e).__mro__}
        if status in (401, 403):
            what = f"the Hub refused the token ({status}): it needs write access to {self.repo}"
        elif names & {"ConnectError", "ConnectionError", "TimeoutException", "Timeout",
                      "OfflineModeIsEnabled", "TransportError"}:  # fmt: skip
            what = f"cannot reach the Hub at {constants.ENDPOINT} ({type(e).__name__})"
        else:
            what = f"{type(e).__name__}: {e}"
        if self.token:
            what = what.replace(self.token, "***")
        after = (
            "The upload may be partial: run the same command again to resume it. "
            if self.uploading
            else "Nothing was uploaded. "
        )
        return f"{op.kind} step failed: {what}. {after}No tag was made."
