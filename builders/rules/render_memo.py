"""Rendered caption texts of the last rule-splits run, by what they were rendered from.

A caption is a pure function of its inputs (the dict `captions.caption_inputs` makes),
the template (its sha256 covers every file it includes) and the code that renders it
(the stage's code and the taxonomy, `scope`). A one-video edit then renders that
video's captions only; every other caption is looked up by its digest.

In: `scope` (a key of everything a render reads besides its template and inputs), and
per render the template's sha256 with the block's name (`what`) and the inputs.
Out: `BUILD/cache/rule_renders.parquet`, (digest, text) for every render this run
used, sorted by digest. The file is read only when the stage's stamp names its sha256
(`SUMMARY_KEY`) and every output the stamp records is intact; else every caption is
rendered, as in a first build. A lookup gives the text a render would:
the digest holds every input (tests/builders/rules/test_render_memo.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MEMO = Path("cache") / "rule_renders.parquet"
SUMMARY_KEY = "render_memo"  # the stamp summary's record of the memo file's sha256


class RenderMemo:
    """The last run's texts (read-only) and the texts this run used (to write)."""

    def __init__(self, scope: str, old: dict[str, str] | None = None):
        self.scope = scope.encode()
        self.old = old or {}
        self.used: dict[str, str] = {}

    def digest(self, what: str, inputs: Any) -> str:
        """The key of one render: the scope, `what` (template and block) and the inputs
        as canonical JSON."""
        h = hashlib.blake2b(self.scope, digest_size=16)
        h.update(f"\0{what}\0".encode())
        text = json.dumps(inputs, sort_keys=True, ensure_ascii=False, default=str)
        h.update(text.encode("utf-8"))
        return h.hexdigest()

    def text(self, what: str, inputs: Any, render) -> str:
        """The text of `inputs`: the last run's when it holds it, else `render()`."""
        return self.lookup(what, inputs, render)[1]

    def lookup(self, what: str, inputs: Any, render) -> tuple[str, str]:
        """The digest of `inputs` and their text (as `text`)."""
        d = self.digest(what, inputs)
        text = self.old.get(d)
        if text is None:
            text = render()
        self.used[d] = text
        return d, text

    def write(self, build_dir: Path) -> str:
        """Write the texts this run used, sorted by digest; the file's sha256."""
        import pyarrow as pa

        from vlm_autodrive.builders.core.files import file_sha256, write_parquet

        keys = sorted(self.used)
        table = pa.table(
            {"digest": keys, "text": [self.used[k] for k in keys]},
            schema=pa.schema([("digest", pa.string()), ("text", pa.string())]),
        )
        path = Path(build_dir) / MEMO
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(table, path)
        return file_sha256(path)


def open_render_memo(build_dir: Path, scope: str, last: Any = False) -> RenderMemo:
    """The last run's memo when the rule-splits stamp names it and its outputs are intact;
    an empty one otherwise. `last`: that stamp's summary as `Stage.intact_summary()` gave
    it, when the caller has read it already (it hashes every output)."""
    from vlm_autodrive.builders.core.files import file_sha256
    from vlm_autodrive.builders.core.stage import Stage

    path = Path(build_dir) / MEMO
    if last is False:
        last = Stage(Path(build_dir), "rule_splits").intact_summary()
    recorded = (last or {}).get(SUMMARY_KEY)
    if not recorded or not path.is_file() or file_sha256(path) != recorded:
        return RenderMemo(scope)
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["digest", "text"])
    old = dict(zip(t["digest"].to_pylist(), t["text"].to_pylist(), strict=True))
    return RenderMemo(scope, old)
