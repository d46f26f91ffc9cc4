"""Read the chosen option out of a model's free-text answer to a multiple-choice question.

In: the raw output and the question's options (class names in the order shown, A, B, ...;
optionally the full option texts). Out: a `ParsedAnswer` with the class, its letter, a
status and the rule that decided, so every prediction can be audited later.

What counts as an answer, tried in this order (the first rule that finds one decides):

1. `<answer>...</answer>` blocks (also unclosed at the end, and with newlines inside, as
   Cosmos-Reason1 writes them). When present they alone decide: a model that used the
   tag meant it, so text outside it is reasoning.
2. After a `</think>`, only the text after it is read. A `<think>` that never closes is
   a truncated output: `truncated`.
3. The whole reply as a short answer: `B`, `(B)`, `B.`, `**B**`, `Option B`,
   `B. Near-Collision`, `Near-Collision`, or the full option text (case-insensitive;
   spaces, hyphens and underscores between words are interchangeable).
4. The last answer phrase: `Answer: B`, `The final answer is (C)`, `The correct option is
   Normal Driving`, read up to the end of its line.
5. The last non-empty line as a short answer (reasoning followed by a bare answer).
6. A scan of the text for explicit letter forms (`(B)`, `**B**`, `option B`, `B.` at a
   line start) and class names or option texts; a class name just after a negation
   ("no collision", "without a collision") does not count.

With `require_tag` (the generation's reasoning filter, which asked for the tag), only rule
1 applies: an output without an `<answer>` block is `no_answer`.

Option letters come from here (`OPTION_LETTERS`, `option_letters`) for every stage: the
MCQ rows, the model-made questions and the evaluation.

Never silently a class: several different answers are `ambiguous`, a letter whose own
text names another class is `conflict`, a letter beyond the options is `invalid_letter`,
nothing at all is `no_answer` (or `empty`). All of them score as the label `unparseable`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

UNPARSEABLE = "unparseable"

# The letters options are shown with, A to Z, for every question the toolkit writes or reads.
OPTION_LETTERS = string.ascii_uppercase


def option_letters(n: int) -> str:
    """The letters of `n` options (`ABC` for 3); ValueError past Z."""
    if not 0 < n <= len(OPTION_LETTERS):
        raise ValueError(f"{n} options: a question has 1 to {len(OPTION_LETTERS)} options")
    return OPTION_LETTERS[:n]


# Statuses of a ParsedAnswer; only "ok" carries a class.
OK = "ok"
EMPTY = "empty"
NO_ANSWER = "no_answer"
AMBIGUOUS = "ambiguous"
CONFLICT = "conflict"
INVALID_LETTER = "invalid_letter"
TRUNCATED = "truncated"
STATUSES = (OK, EMPTY, NO_ANSWER, AMBIGUOUS, CONFLICT, INVALID_LETTER, TRUNCATED)


@dataclass(frozen=True)
class ParsedAnswer:
    """The outcome of parsing one output.

    `label` is a class name when `status == "ok"`, else None; `letter` is the option
    letter of that class; `method` names the rule that decided (`answer_tag`, `short`,
    `marker`, `last_line`, `scan`) and `detail` explains a failure in words.
    """

    label: str | None
    letter: str | None
    status: str
    method: str = ""
    detail: str = ""

    @property
    def prediction(self) -> str:
        """The label scored by the metrics: the class, or `unparseable`."""
        return self.label if self.label is not None else UNPARSEABLE


class _Options:
    """The options of one question with their matching patterns (built once per question)."""

    def __init__(self, names: Sequence[str], texts: Sequence[str] | None):
        if not names:
            raise ValueError("a question needs at least one option")
        if texts is not None and len(texts) != len(names):
            raise ValueError(f"{len(texts)} option texts for {len(names)} options")
        self.names = list(names)
        self.letters = list(option_letters(len(names)))
        # Longest phrase first, so `Near-Collision` is taken before `Collision` inside it.
        phrases: list[tuple[str, int]] = [(n, i) for i, n in enumerate(names)]
        if texts:
            phrases += [(t, i) for i, t in enumerate(texts) if t.strip()]
        phrases.sort(key=lambda p: -len(p[0]))
        self.patterns = [(_phrase_pattern(p), i) for p, i in phrases]
        self.exact = {_norm(p): i for p, i in phrases}

    def by_letter(self, letter: str) -> int | None:
        letter = letter.upper()
        return self.letters.index(letter) if letter in self.letters else None

    def answer(self, index: int, method: str) -> ParsedAnswer:
        return ParsedAnswer(self.names[index], self.letters[index], OK, method)


def parse_answer(
    text: str | None,
    options: Sequence[str],
    option_texts: Sequence[str] | None = None,
    *,
    require_tag: bool = False,
) -> ParsedAnswer:
    """Parse a raw model output against the options shown (class names, in letter order).

    `option_texts` are the full texts shown after each letter (e.g. `Collision: the ego
    vehicle makes ...`); when given, a reply quoting them is understood too. With
    `require_tag`, only an `<answer>` block counts (see the module docstring).
    """
    opts = _Options(options, option_texts)
    # Special tokens a server may leave in (`<|im_end|>`) are no part of the answer.
    raw = _SPECIAL_TOKEN.sub(" ", text or "").strip()
    if not raw:
        return ParsedAnswer(None, None, EMPTY, "", "empty output")

    blocks = _answer_blocks(raw)
    if blocks is not None:
        return _combine([_parse_short(b, opts, "answer_tag", scan=True) for b in blocks])
    if require_tag:
        return ParsedAnswer(None, None, NO_ANSWER, "", "no <answer>...</answer> in the output")

    region = raw
    if "</think>" in region.lower():
        region = re.split(r"</think>", region, flags=re.IGNORECASE)[-1].strip()
        if not region:
            return ParsedAnswer(None, None, NO_ANSWER, "", "nothing after </think>")
    elif re.search(r"<think>", region, re.IGNORECASE):
        return ParsedAnswer(None, None, TRUNCATED, "", "<think> never closed")

    short = _parse_short(region, opts, "short", scan=False)
    if short.status != NO_ANSWER:
        return short
    marked = _last_marker(region, opts)
    if marked is not None and marked.status != NO_ANSWER:
        return marked
    lines = [ln for ln in region.splitlines() if ln.strip()]
    if len(lines) > 1:
        last = _parse_short(lines[-1], opts, "last_line", scan=False)
        if last.status != NO_ANSWER:
            return last
    return _scan(region, opts, "scan")


# --- the rules ---------------------------------------------------------------------------

_SPECIAL_TOKEN = re.compile(r"<\|[^|<>]{1,40}\|>")
_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.IGNORECASE | re.DOTALL)


def _answer_blocks(text: str) -> list[str] | None:
    """The contents of every `<answer>` block, or None when the output has none."""
    if not _ANSWER_OPEN.search(text):
        return None
    # An unclosed block runs to the end (a reply cut by the token limit after the tag).
    return [m.group(1) for m in _ANSWER_BLOCK.finditer(text)]


def _combine(results: list[ParsedAnswer]) -> ParsedAnswer:
    """One answer from several `<answer>` blocks: those that parse must all agree.

    A block that does not parse is skipped when another does: small models echo the
    format instruction (`<answer>your answer</answer>`) before their real answer.
    """
    good = [r for r in results if r.status == OK]
    if not good:
        return results[-1] if results else ParsedAnswer(None, None, EMPTY, "answer_tag")
    labels = {r.label for r in good}
    if len(labels) > 1:
        return ParsedAnswer(
            None, None, AMBIGUOUS, results[0].method, f"answer blocks disagree: {sorted(labels)}"
        )
    return good[-1]


_STRIP_MARKUP = re.compile(r"[*_`\"'“”‘’]+")
_LETTER_ONLY = re.compile(r"^(?:(?:option|choice|answer)\s*:?\s*)?[(\[]?([A-Za-z])[)\]]?$", re.I)
_LETTER_THEN_TEXT = re.compile(
    r"^(?:(?:option|choice)\s+)?[(\[]?([A-Za-z])(?:[)\]]\s*[.:,\-]?|\s*[.:,\-])\s*(.+)$",
    re.I | re.S,
)


def _clean(text: str) -> str:
    """Drop Markdown emphasis and quotes, collapse whitespace, trim end punctuation."""
    text = _STRIP_MARKUP.sub("", text)
    text = " ".join(text.split())
    return text.strip().rstrip(".!,;:").strip()


def _parse_short(text: str, opts: _Options, method: str, scan: bool) -> ParsedAnswer:
    """The text as a short answer: a letter form, a letter with its text, or an option.

    With `scan`, text that is no short form is scanned for letters and options (used
    inside `<answer>` tags, where any text is the answer). Otherwise such text gives
    `no_answer` so the caller tries its next rule.
    """
    s = _clean(text)
    if not s:
        return ParsedAnswer(None, None, EMPTY if scan else NO_ANSWER, method, "empty answer")
    m = _LETTER_ONLY.match(s)
    if m:
        return _letter(m.group(1), opts, method)
    m = _LETTER_THEN_TEXT.match(s)
    if m:
        by_letter = _letter(m.group(1), opts, method)
        if by_letter.status != OK:
            return by_letter
        # A letter with its own words: the words may explain, but may not name another
        # letter (a hedge, or every option echoed back) or another class ("A. Collision"
        # where A is Near-Collision).
        letters = {opts.names[i] for i in _scan_letters(s, opts)[0]} - {by_letter.label}
        named = set(_scan_phrases(m.group(2), opts))
        others = letters | (named - {by_letter.label})
        if others:
            status = CONFLICT if not letters and len(named) == 1 else AMBIGUOUS
            return ParsedAnswer(
                None,
                None,
                status,
                method,
                f"letter {by_letter.letter} is {by_letter.label} but the answer also names "
                f"{sorted(others)}",
            )
        return by_letter
    index = opts.exact.get(_norm(s))
    if index is not None:
        return opts.answer(index, method)
    if scan:
        return _scan(s, opts, method)
    return ParsedAnswer(None, None, NO_ANSWER, method, "not a short answer")


def _letter(letter: str, opts: _Options, method: str) -> ParsedAnswer:
    index = opts.by_letter(letter)
    if index is None:
        return ParsedAnswer(
            None,
            None,
            INVALID_LETTER,
            method,
            f"letter {letter.upper()} is not one of {''.join(opts.letters)}",
        )
    return opts.answer(index, method)


_MARKER = re.compile(
    r"(?:final\s+answer|correct\s+(?:answer|option|choice)|best\s+(?:answer|option)|answer)"
    r"\s*(?:is|would\s+be|should\s+be|:|=|-)\s*(?:option\s+)?(.*)",
    re.IGNORECASE,
)


def _last_marker(text: str, opts: _Options) -> ParsedAnswer | None:
    """The answer after the last `Answer: ...` style phrase, read to the end of its line."""
    found = None
    for line in text.splitlines():
        for m in _MARKER.finditer(line):
            found = m.group(1)
    if found is None:
        return None
    # Up to the end of its sentence: "B. Collision" keeps its dot, "... is B. The car" not.
    head = re.split(r"(?<=[a-z)\]])\.\s", found, maxsplit=1)[0]
    return _parse_short(head, opts, "marker", scan=True)


# Explicit letter forms inside running text. A bare capital is not one: "A car brakes".
# Upper case only except after "option": "(a)" or "a." in prose is the model's own list.
# A hedge after "or": "B, or maybe C".
_LETTER_FORMS = re.compile(
    r"\(([A-Z])\)|\*\*([A-Z])\*\*|\b[Oo]ption\s+([A-Za-z])\b|^\s*([A-Z])[.)]\s"
    r"|\bor\s+(?:maybe\s+|perhaps\s+|possibly\s+)?\(?([A-Z])\b",
    re.MULTILINE,
)
# Capitals joined by or/and/commas/slashes: a hedge between options ("A or B", "B/C").
_LETTER_LIST = re.compile(r"(?<!\w)[A-Z](?:\s*(?:,|/|\bor\b|\band\b)\s*[A-Z](?!\w))+")
_NEGATION = re.compile(
    r"\b(?:no|not|without|never|nor|neither|avoid(?:s|ed|ing)?|isn't|wasn't|rather\s+than)"
    r"(?:\s+(?:a|an|any|the|sign\s+of|real|actual))*\s*$",
    re.IGNORECASE,
)


def _scan(text: str, opts: _Options, method: str) -> ParsedAnswer:
    """The one option a free text names (by letter forms or phrases), else a failure."""
    found, bad_letters = _scan_letters(text, opts)
    found.update(opts.names.index(n) for n in _scan_phrases(text, opts))
    if len(found) == 1:
        return opts.answer(found.pop(), method)
    if len(found) > 1:
        names = [opts.names[i] for i in sorted(found)]
        return ParsedAnswer(None, None, AMBIGUOUS, method, f"names several options: {names}")
    if bad_letters:
        return ParsedAnswer(
            None, None, INVALID_LETTER, method, f"letter {bad_letters[-1]} is not an option"
        )
    return ParsedAnswer(None, None, NO_ANSWER, method, "no option letter or name found")


def _scan_letters(text: str, opts: _Options) -> tuple[set[int], list[str]]:
    """Options named by explicit letter forms and letter lists (`A or B`), and the letters
    found that are no option."""
    letters = [next(g for g in m.groups() if g) for m in _LETTER_FORMS.finditer(text)]
    for m in _LETTER_LIST.finditer(text):
        letters += re.findall(r"(?<!\w)[A-Z](?!\w)", m.group(0))
    found: set[int] = set()
    bad: list[str] = []
    for letter in letters:
        index = opts.by_letter(letter)
        if index is None:
            bad.append(letter.upper())
        else:
            found.add(index)
    return found, bad


def _scan_phrases(text: str, opts: _Options) -> list[str]:
    """Class names named in `text` (by name or option text), longest match first, in
    order of first appearance; occurrences right after a negation are skipped."""
    masked = text
    hits: list[tuple[int, int]] = []
    for pattern, index in opts.patterns:
        for m in pattern.finditer(masked):
            if not _NEGATION.search(masked[: m.start()]):
                hits.append((m.start(), index))
        # Blank the matches out so a shorter phrase inside them is not found again.
        masked = pattern.sub(lambda m: " " * len(m.group(0)), masked)
    seen: list[str] = []
    for _, index in sorted(hits):
        if opts.names[index] not in seen:
            seen.append(opts.names[index])
    return seen


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    """A case-insensitive pattern for a phrase whose word gaps may be space, `-` or `_`."""
    # The final full stop of an option text is optional when a reply quotes it.
    words = [re.escape(w) for w in re.split(r"[\s\-_]+", phrase.strip().rstrip(".")) if w]
    return re.compile(r"(?<!\w)" + r"[\s\-_]*".join(words) + r"(?!\w)", re.IGNORECASE)


def _norm(text: str) -> str:
    return " ".join(re.split(r"[\s\-_]+", _clean(text).lower())).strip()


def option_texts_from_question(question: str, n: int) -> list[str] | None:
    """The texts shown after `A.`, `B.`, ... in a rendered MCQ question, if all n are found."""
    found = {}
    for m in re.finditer(r"^\s*([A-Z])[.)]\s+(.+?)\s*$", question, re.MULTILINE):
        found.setdefault(m.group(1), m.group(2))
    letters = option_letters(n)
    if all(letter in found for letter in letters):
        return [found[letter] for letter in letters]
    return None
