"""Degenerate model output: well-formed text that must not become a training row.

In: the parsed pieces of one output (a question, its options and answer, an open answer,
reasoning, a caption). Out: nothing when they are fine; otherwise `Degenerate` (failure
kind `degenerate`, kept raw in the `failures` config) whose message starts with one of
`REASONS`. Every model split's parser calls these checks on what it parsed, so the same
output is judged the same way in every split.

What counts (each seen in the demo's own output, or the usual failure of a model looping):

- `repetition`: one word said 4+ times in a row ("A, A, A, A, ..."), a phrase of 2-8
  words 3+ times in a row, one line of 3+ words 3+ times, or a long text (40+ words) in
  which under half of its 4-word sequences are distinct;
- `placeholder option` / `placeholder reason` / `placeholder question`: a template word
  with a number or letter ("step 1", "option A", "answer1'"), a label with nothing after
  it ("answer:"), punctuation only ("]}"), or JSON debris (`{`, `"key":`) in it;
- `empty option`, `duplicate options` (the same words up to case, articles and end
  punctuation), `bare letter/number option` ("B", "2");
- `answer copied into question`: the correct option's words appear in the question and no
  other option's do (a blind reader picks it); for an open answer, the answer of 2+
  words stated in its question;
- `empty question`, `question too short` (under 2 words or 8 characters);
- `no content`: reasoning or a caption with under 2 real words once placeholder words
  ("step", "answer", ...) are set aside ("1. step 1 / 2. step 2").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from vlm_autodrive.builders.generate.parsing import Degenerate

REASONS = (
    "repetition",
    "placeholder option",
    "placeholder reason",
    "placeholder question",
    "empty option",
    "duplicate options",
    "bare letter/number option",
    "answer copied into question",
    "empty question",
    "question too short",
    "no content",
)
MIN_QUESTION_WORDS, MIN_QUESTION_CHARS = 2, 8
MIN_CONTENT_WORDS = 2
MAX_NGRAM = 8
# A long text whose distinct 4-word sequences are fewer than this share of all of them
# loops (real reasoning and captions are above 0.8; a model stuck in a loop is below 0.3).
MIN_DISTINCT_4GRAMS, LONG_TEXT_WORDS = 0.5, 40

# Words a template uses for its slots: with a number or letter they are no content.
PLACEHOLDER_WORDS = frozenset(
    ("option", "options", "choice", "answer", "answers", "step", "steps", "item", "reason",
     "reasons", "question", "distractor", "alternative", "placeholder")
)  # fmt: skip
_PLACEHOLDER = re.compile(
    rf"(?:(?:{'|'.join(sorted(PLACEHOLDER_WORDS))})\s*(?:[a-z]|\d{{1,3}})?"
    r"|tbd|todo|n/?a|x{2,}|lorem ipsum.*|your answer(?: here)?|\.\.\.|…)",
    re.IGNORECASE,
)
_JSON_DEBRIS = re.compile(r"[{}\[\]]|[\"']\s*:|\"\s*,")
_BARE = re.compile(r"[A-Za-z]|\d+(?:[.,]\d+)?")
_END_PUNCT = " \t\n.,;:!?'\"`*_-()[]{}<>/\\|"
_WORDS = re.compile(r"\w+")
_LIST_MARK = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s*")
_ARTICLE = re.compile(r"^(?:a|an|the)\s+")


def _core(text: str) -> str:
    """The text without surrounding punctuation, quotes, brackets and spaces."""
    return " ".join(text.split()).strip(_END_PUNCT)


def _norm(text: str) -> str:
    """Lowercased words for comparing options: no end punctuation, no leading article."""
    return _ARTICLE.sub("", _core(text).lower())


def is_placeholder(text: str) -> bool:
    """A template slot rather than content: "step 1", "option A", "answer:", "]}"."""
    core = _core(text)
    return core == "" or bool(_PLACEHOLDER.fullmatch(core))


def check_repetition(text: str, what: str) -> None:
    """`repetition` when the text loops (see the module docstring)."""
    words = [w.lower() for w in _WORDS.findall(text)][:20_000]
    # A unit of n words said k times in a row is a run of (k - 1) * n words each equal to
    # the word n later. Short texts (options, questions: most calls) are scanned in plain
    # Python; numpy's per-call cost only pays off on long ones.
    run = _first_run(words) if len(words) <= 256 else _first_run_numpy(words)
    if run is not None:
        start, length, n = run
        unit = " ".join(words[start : start + n])
        raise Degenerate("repetition", f"the {what} says {unit!r} {length // n + 1} times in a row")
    lines = Counter(
        " ".join(_LIST_MARK.sub("", ln).lower().split())
        for ln in text.splitlines()
        if len(ln.split()) >= 3
    )
    if lines and (top := lines.most_common(1)[0])[1] >= 3:
        raise Degenerate("repetition", f"the {what} repeats the line {top[0]!r} {top[1]} times")
    if len(words) >= LONG_TEXT_WORDS:
        grams = list(zip(words, words[1:], words[2:], words[3:]))
        share = len(set(grams)) / len(grams)
        if share < MIN_DISTINCT_4GRAMS:
            raise Degenerate(
                "repetition",
                f"the {what} loops: {share:.0%} of its 4-word sequences are distinct",
            )


def _need(n: int) -> int:
    """Words equal to the word n later that make a loop: a unit of n words said 4 times
    in a row (one word) or 3 times (longer units)."""
    return ((4 if n == 1 else 3) - 1) * n


def _first_run(words: list[str]) -> tuple[int, int, int] | None:
    """(start, length, n) of the first run that loops, for the smallest n; or None."""
    for n in range(1, MAX_NGRAM + 1):
        need, start, length = _need(n), 0, 0
        for i in range(len(words) - n):
            if words[i] == words[i + n]:
                if length == 0:
                    start = i
                length += 1
            else:
                if length >= need:
                    return start, length, n
                length = 0
        if length >= need:
            return start, length, n
    return None


def _first_run_numpy(words: list[str]) -> tuple[int, int, int] | None:
    """`_first_run` for long texts, vectorised."""
    import numpy as np

    index: dict[str, int] = {}
    ids = np.array([index.setdefault(w, len(index)) for w in words], dtype=np.int64)
    for n in range(1, MAX_NGRAM + 1):
        need = _need(n)
        same = ids[:-n] == ids[n:]
        if int(same.sum()) < need:
            continue
        edges = np.diff(np.concatenate(([0], same.astype(np.int8), [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        long = np.flatnonzero(ends - starts >= need)
        if len(long):
            return int(starts[long[0]]), int(ends[long[0]] - starts[long[0]]), n
    return None


def check_content(text: str, what: str) -> None:
    """`no content` when the text has under MIN_CONTENT_WORDS real words (placeholder
    words set aside), then `repetition`."""
    real = 0
    for w in _WORDS.finditer(text):  # letters only, two or more: "answer1" is no word
        word = w.group()
        if len(word) >= 2 and word.isalpha() and word.lower() not in PLACEHOLDER_WORDS:
            real += 1
            if real >= MIN_CONTENT_WORDS:
                break
    if real < MIN_CONTENT_WORDS:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise Degenerate("no content", f"the {what} {shown!r} has {real} real words")
    check_repetition(text, what)


def check_question(question: str, where: str = "") -> None:
    """An asked question: not empty, not a slot, long enough, not looping."""
    at = f" ({where})" if where else ""
    q = " ".join(question.split())
    if not _core(q):
        raise Degenerate("empty question", f"nothing asked{at}")
    if is_placeholder(q):
        raise Degenerate("placeholder question", f"{q!r}{at}")
    if len(q.split()) < MIN_QUESTION_WORDS or len(q) < MIN_QUESTION_CHARS:
        raise Degenerate(
            "question too short",
            f"{q!r}{at} (at least {MIN_QUESTION_WORDS} words, {MIN_QUESTION_CHARS} characters)",
        )
    check_repetition(q, f"question{at}")


def check_options(options: Sequence[str], where: str = "") -> None:
    """Options written by a model: none empty, a slot, debris, a bare letter or number,
    or the same as another."""
    at = f" ({where})" if where else ""
    seen: dict[str, str] = {}
    for k, o in enumerate(options):
        name = f"option {k + 1}{at}"
        if not o.strip():
            raise Degenerate("empty option", name)
        if _BARE.fullmatch(_core(o)):
            raise Degenerate("bare letter/number option", f"{name} is {o!r}")
        if is_placeholder(o) or _JSON_DEBRIS.search(o):
            raise Degenerate("placeholder option", f"{name} is {o!r}")
        check_repetition(o, name)
        key = _norm(o)
        if key in seen:
            raise Degenerate("duplicate options", f"{seen[key]!r} and {o!r}{at}")
        seen[key] = o


def _says(text: str, phrase: str) -> bool:
    """`phrase` (normalised) occurs in `text` as whole words."""
    p = " ".join(_norm(phrase).split())
    if len(p) < 2:
        return False
    low = " ".join(text.lower().split())
    return re.search(rf"(?<![\w-]){re.escape(p)}(?![\w-])", low) is not None


def check_answer_not_in_question(
    question: str, options: Sequence[str], answer: int, where: str = ""
) -> None:
    """`answer copied into question`: the question names the correct option and no other."""
    if _says(question, options[answer]) and not any(
        _says(question, o) for k, o in enumerate(options) if k != answer
    ):
        at = f" ({where})" if where else ""
        raise Degenerate(
            "answer copied into question",
            f"the question{at} names the answer {options[answer]!r} and no other option",
        )


def check_mcq(question: str, options: Sequence[str], answer: int, where: str = "") -> None:
    """Every check of one model-written multiple-choice question."""
    check_question(question, where)
    check_options(options, where)
    check_answer_not_in_question(question, options, answer, where)


def check_open_qa(question: str, answer: str, where: str = "") -> None:
    """An open question and its short answer: the question's checks, the answer not a
    slot nor looping, nor (2+ words, or the whole question) copied into the question."""
    at = f" ({where})" if where else ""
    check_question(question, where)
    if is_placeholder(answer) or _JSON_DEBRIS.search(answer):
        raise Degenerate("placeholder option", f"the answer{at} is {answer!r}")
    check_repetition(answer, f"answer{at}")
    if _norm(answer) == _norm(question) or (len(answer.split()) >= 2 and _says(question, answer)):
        raise Degenerate("answer copied into question", f"{answer!r} is in {question!r}{at}")


def check_reasons(reasons: Sequence[str]) -> None:
    """A list of reasoning steps: none a slot or debris ("step 1", "]{", "answer1': ...")."""
    for k, r in enumerate(reasons):
        if is_placeholder(r) or _JSON_DEBRIS.search(r):
            raise Degenerate("placeholder reason", f"reason {k + 1} is {r!r}")
