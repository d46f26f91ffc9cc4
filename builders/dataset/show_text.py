"""`autodrive show`'s text: a selection of rows as blocks of labelled lines.

In: a `Selection` (show.py) and a line width (default: the terminal's). Out: one block
per row (a heading with config, split, label and id; then the question, the options
lettered with the answer marked, the answer or caption, the reasoning, the clip and its
provenance, the other columns on one line), then the counts. Values past
TEXT_VALUE_LIMIT characters are cut, saying how much was left out. Control characters
are shown escaped (`\x1b`): a row holds a model's output, and an escape sequence in it
must not clear the screen or print text that the row does not hold.
"""

from __future__ import annotations

import shutil
import textwrap

from vlm_autodrive.builders.core.terminal import printable
from vlm_autodrive.builders.dataset.show import Field, Selection, ShownRow

# A model's raw output can be pages long; the HTML page always shows values whole.
TEXT_VALUE_LIMIT = 2000


def format_text(sel: Selection, width: int | None = None) -> str:
    """The selection as plain text: one block per row, then the counts."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    out = []
    for n, row in enumerate(sel.rows, 1):
        head = f"[{n}/{len(sel.rows)}] {row.config} · {row.split} · {row.label} · id {row.id}"
        out.append(printable(head))
        for f in _text_fields(row):
            out += _labelled(printable(f.label), printable(_cut(f.text)), width)
        out.append("")
    out.append(printable(sel.summary()))
    return "\n".join(out)


def _text_fields(row: ShownRow) -> list[Field]:
    fields = list(row.fields)
    if row.options:
        text = "\n".join(f"{ch}. {o}" + ("   <- answer" if ok else "") for ch, o, ok in row.options)
        at = 1 if fields and fields[0].label == "question" else 0
        fields.insert(at, Field("options", text, block=True))
    for f in row.provenance:
        missing = f.label == "clip" and not row.video_exists
        fields.append(Field(f.label, f.text + (" (missing)" if missing else "")))
    if row.extra:
        fields.append(Field("also", " · ".join(f"{k} {v}" for k, v in row.extra)))
    return fields


def _cut(text: str) -> str:
    if len(text) <= TEXT_VALUE_LIMIT:
        return text
    rest = len(text) - TEXT_VALUE_LIMIT
    return text[:TEXT_VALUE_LIMIT] + f"... ({rest} more characters; --html shows them all)"


def _labelled(label: str, text: str, width: int) -> list[str]:
    """`  label      text` with continuation lines under the text, wrapped to `width`."""
    pad = 15
    body = max(width - pad, 30)
    lines: list[str] = []
    for para in text.split("\n") or [""]:
        lines += textwrap.wrap(para, body, break_long_words=True, replace_whitespace=False) or [""]
    first = f"  {label:<{pad - 3}} "
    return [((first if i == 0 else " " * pad) + line).rstrip() for i, line in enumerate(lines)]
