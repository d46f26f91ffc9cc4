"""A build folder, or a published dataset named by its Hub id, as a local folder.

In: what a user typed where a build folder is read (`autodrive show`, `export-rl`, the
Python API's `load`/`show`): a folder, or a Hub dataset `ORG/NAME[@REVISION]` (a version
`@vX.Y.Z`, `@X.Y.Z` read as its tag, a branch or a commit). Out: a local folder with the
release's layout (provenance.json, README.md, data/<config>/<split>-*.parquet and the
files asked for), downloaded with huggingface_hub's `snapshot_download` into its cache
(HF_ENDPOINT, HF_HOME and HF_TOKEN apply as they do for every Hugging Face tool).

A path that exists is always the folder; a Hub id is only tried for one that does not
and whose first part is not a local folder (`build/typo` is a missing folder).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")
VERSION = re.compile(r"^\d+\.\d+\.\d+$")
ALWAYS = ("README.md", "provenance.json", "taxonomy.yaml")


class HubUnreachable(RuntimeError):
    """The Hub cannot be reached and nothing is cached (the CLI exits 4)."""


def parse_hub_id(spec: str) -> tuple[str, str | None] | None:
    """`("org/name", "v1.2.0")` for `org/name@1.2.0` or `org/name@v1.2.0`, `(repo, None)`
    without a revision, None when `spec` is not shaped like a Hub id."""
    m = HUB_ID.match(str(spec))
    if not m:
        return None
    rev = m["rev"]
    if rev and VERSION.match(rev):
        rev = "v" + rev  # `autodrive publish` tags version X.Y.Z as vX.Y.Z
    return m["repo"], rev


def resolve_build(spec: str | Path, patterns: Iterable[str] = ("data/**",), what: str = "") -> Path:
    """The folder `spec` names: itself when it exists, else the snapshot of the Hub dataset
    it names with the files matching `patterns` (plus the card, provenance and taxonomy).

    Raises FileNotFoundError (exit 2) for a path that is neither; ValueError (exit 2) for
    a Hub dataset or revision that does not exist; HubUnreachable (exit 4) when the Hub
    cannot be reached and nothing is cached. `what` names the argument in messages (e.g. "BUILD").
    """
    path = Path(spec).expanduser()
    if path.exists():
        return path
    parsed = parse_hub_id(str(spec))
    where = f"{what}: " if what else ""
    if parsed is None:
        raise FileNotFoundError(
            f"{where}{spec}: no such build folder, and not a Hub dataset id ORG/NAME[@vX.Y.Z]"
        )
    if path.parent.is_dir() and str(path.parent) not in (".", ""):
        # `build/quickstrat`: a typo in a local path, not a dataset of the org `build`
        raise FileNotFoundError(f"{where}{spec}: no such build folder (in {path.parent})")
    return snapshot(*parsed, patterns=patterns, where=f"{where}{spec}")


def snapshot(repo: str, revision: str | None, patterns: Iterable[str], where: str) -> Path:
    """`snapshot_download` of the dataset `repo` at `revision` (files matching
    `patterns` and ALWAYS); errors as `resolve_build` says."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        folder = snapshot_download(
            repo,
            repo_type="dataset",
            revision=revision,
            allow_patterns=[*patterns, *ALWAYS],
        )
    except RevisionNotFoundError:
        raise ValueError(
            f"{where}: the Hub dataset {repo} has no revision {revision!r} (a version is "
            "@vX.Y.Z, as `autodrive publish` tags it)"
        ) from None
    except RepositoryNotFoundError:
        raise ValueError(
            f"{where}: no such folder, and no Hub dataset {repo} (or it is private: log in "
            "with `hf auth login` or set HF_TOKEN)"
        ) from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise HubUnreachable(
            f"{where}: no such folder; the Hub cannot be reached (offline, or HF_HUB_OFFLINE "
            "is set) and the dataset is not in the local Hugging Face cache"
        ) from None
    return Path(folder)
