"""A Griffe extension for the API pages: doctest examples in docstrings become code.

In: every docstring Griffe loads for mkdocstrings. Out: the same text with each run of
`>>>` lines (and the output lines after them, up to a blank line) fenced as `pycon`, and
each `::` literal block after an indented paragraph left as it is. Without it, Markdown
reads `load(...)[0]["answer"]` as a reference link and the strict build fails.
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """`text` with its doctest runs fenced as ```pycon blocks (indentation kept)."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.lstrip().startswith(">>>"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        out.append(f"{indent}```pycon")
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence the doctest examples of every object's docstring."""

    def on_object(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
