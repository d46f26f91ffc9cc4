"""What a release must not carry: the building machine's paths and private server URLs.

In: the build's provenance (a JSON-like dict) and the build folder. Out: a copy fit to
publish:

- absolute paths inside the build folder become relative to it; other absolute paths
  keep only their last part, marked `<outside the build>/NAME` (where the build read
  them from is the machine's business);
- keys that name servers (`base_urls`, `base_url`, `endpoint`, `url`) are dropped, and
  any `http(s)://host[:port]/path` left inside a text becomes `<server>`; model ids,
  revisions and sampling settings are kept.

`scrub_text` is the same rule for one string: the failure reasons of the `failures`
config use it when the row is made, and the release staging again on older builds.
`shown_model_name` is the rule for a model named in rows (their `generator`).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

SERVER_KEYS = frozenset({"base_urls", "base_url", "endpoint", "url", "api_base"})
URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>,;)]*[^\s'\"<>,;):.]")
OUTSIDE = "<outside the build>"


def scrub_text(text: str, build_dir: Path | None = None) -> str:
    """`text` without URLs (-> `<server>`) and, given `build_dir`, without its path."""
    if build_dir is not None:
        root = str(Path(build_dir).resolve())
        text = text.replace(root + "/", "").replace(root, ".")
    return URL.sub("<server>", text)


def scrub_provenance(obj: Any, build_dir: Path) -> Any:
    """A copy of `obj` (provenance) without server URLs and with paths made relative."""
    root = Path(build_dir).resolve()
    return _walk(obj, root)


def _walk(obj: Any, root: Path) -> Any:
    if isinstance(obj, dict):
        return {k: _walk(v, root) for k, v in obj.items() if str(k) not in SERVER_KEYS}
    if isinstance(obj, list):
        return [_walk(v, root) for v in obj]
    if isinstance(obj, str):
        return _path(obj, root)
    return obj


def _path(s: str, root: Path) -> str:
    if URL.search(s):
        return URL.sub("<server>", s)
    if not s.startswith("/") or "\n" in s:
        return scrub_text(s, root) if str(root) in s else s
    p = PurePosixPath(s)
    try:
        return p.relative_to(root).as_posix() or "."
    except ValueError:
        pass
    try:  # the folder may have been given through a symlink or as written by the user
        return Path(s).resolve().relative_to(root).as_posix() or "."
    except (ValueError, OSError):
        return f"{OUTSIDE}/{p.name}"


def shown_model_name(model: str) -> str:
    """A model as rows name it: a Hub id (`org/name`) as it is; a path (a folder here, an
    absolute or `./`, `../`, `~` path, or one with more than one `/`, which no Hub id
    has) by its last part only.

    >>> shown_model_name("meta-llama/Llama-3.1-70B-Instruct")
    'meta-llama/Llama-3.1-70B-Instruct'
    >>> shown_model_name("/srv/models/alice-llama-70b/")
    'alice-llama-70b'
    >>> shown_model_name("build/models/smollm2-135m-instruct")
    'smollm2-135m-instruct'
    """
    p = PurePosixPath(model)
    looks_like_path = (
        model.startswith(("/", "./", "../", "~")) or len(p.parts) > 2 or Path(model).is_dir()
    )
    return p.name if looks_like_path and p.name else model
