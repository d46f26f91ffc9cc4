"""Text from rows, manifests and models made safe to print on a terminal.

`printable(text)` escapes every character that a terminal acts on instead of showing:
C0 and C1 control characters (ESC starts the sequences that clear the screen, move the
cursor or retitle the window; CR overwrites the line), DEL, the bidirectional overrides
and isolates (which reorder what is shown), and lone surrogates (invalid Unicode). Each
becomes its Python escape (`\\x1b`, `\\u202e`), so a row prints as what it holds. Line
feeds and tabs are kept: they only lay text out. `one_line(text)` escapes them too, for a
value that must stay on its line (an id or path in a list of rejects).
"""

from __future__ import annotations

import re

_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with control characters escaped: `"a\\x1b[2Jb"` -> `"a\\\\x1b[2Jb"`."""
    return _HIDDEN.sub(_escape, text)


def one_line(text: str) -> str:
    """`printable(text)` with line feeds and tabs escaped too (`\\n`, `\\t`): a value
    that holds one (a CSV cell with an unclosed quote) cannot break the line it is on."""
    return printable(text).replace("\n", "\\n").replace("\t", "\\t")
