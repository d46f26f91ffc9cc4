"""Blind answerability: can a config's multiple-choice questions be answered without the
video?

In: the rows of every multiple-choice config of a build (a config whose Parquet files
have `question`, `options` and `answer_letter`: mcq, vqa, reasoning_mcq, reasoning_vqa,
cause_vqa, short_qa where it has options). Out: `BaselineScore` rows per config,
baseline and class, and a `LeakFlag` with the leaking row ids per flagged (config,
baseline). Baselines that never see the video:

- `majority_letter`: the most frequent answer letter of the train side, scored on test
  (what that letter scores on train itself, the letter prior a model trained there
  learns, is letters.py's check: a class-balanced test side hides it);
- `longest_option`: the option with the most characters;
- `most_shared_words`: the option sharing most words with the question;
- `option_in_question`: the option the largest share of whose words the question holds;
- `text_model`: a language model asked the question and options without the video, when
  an `ask` function is given (model.py's `backend_answerer` over any generation backend:
  the recipe's text model); the audit runs it only when asked.

Scores are on the test side (the side a benchmark reads; it is balanced per class, so a
class prior does not pass for a leak); a config without test rows is scored on train,
with a note. The question's own option lines (`A. ...`) are left out before words are
compared, so the listing does not count as the question naming an option.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from vlm_autodrive.builders.audit.intervals import interval
from vlm_autodrive.builders.audit.records import BaselineScore, LeakFlag
from vlm_autodrive.builders.core.answers import OPTION_LETTERS
from vlm_autodrive.builders.dataset.folder import all_data_files

MC_COLUMNS = ("question", "options", "answer_letter")
ROW_COLUMNS = ("id", "video_id", "label", "split", *MC_COLUMNS)
MARGIN = 0.05  # flagged at chance + 5 points or more (and the interval above chance)
FAMILY_LEVEL = 0.95  # the flag's confidence over all baselines of a config (Bonferroni)
_OPTION_LINES = re.compile(r"(?m)^[ \t]*[A-Z][.)][ \t].*$")
_WORD = re.compile(r"[a-z0-9]+")
_STOP = (
    "a an the of in on at to for from by with and or is are was were be been this that "
    "these those it its what which who whom how why when where does do did there their "
    "than then as into onto over under ego vehicle video clip option options correct "
    "letter answer choose one"
)
STOPWORDS = frozenset(_STOP.split())


def multiple_choice_configs(build_dir: Path) -> dict[str, dict[str, str]]:
    """config -> split -> data file (relative), for the build's configs whose files have
    the multiple-choice columns (mixtures and `failures` have not)."""
    import pyarrow.parquet as pq

    out = {}
    for config, files in sorted(all_data_files(build_dir).items()):
        present = {s: f for s, f in files.items() if (build_dir / f).is_file()}
        if present and all(
            set(MC_COLUMNS) <= set(pq.read_schema(build_dir / f).names) for f in present.values()
        ):
            out[config] = present
    return out


def read_rows(build_dir: Path, files: dict[str, str]) -> list[dict[str, Any]]:
    """The rows of one config, both sides, sorted by side and id (a stable order)."""
    import pyarrow.parquet as pq

    rows = []
    for rel in files.values():
        rows += pq.read_table(build_dir / rel, columns=list(ROW_COLUMNS)).to_pylist()
    return sorted(rows, key=lambda r: (r["split"], r["id"]))


def words(text: str) -> frozenset[str]:
    """The text's lower-case words, stopwords left out."""
    return frozenset(_WORD.findall(text.lower())) - STOPWORDS


@lru_cache(maxsize=65536)  # option texts repeat across rows ("clear", "Collision")
def _option_words(text: str) -> frozenset[str]:
    return words(text)


def question_stem(question: str) -> str:
    """The question without its option lines (`A. ...`, `B) ...`)."""
    return _OPTION_LINES.sub("", question)


@lru_cache(maxsize=4096)  # rule configs ask every clip the same question
def _stem_words(question: str) -> frozenset[str]:
    return words(question_stem(question))


def _credit(scores: list[float], answer: int) -> float:
    """1/k when the answer is among the k best-scoring options, else 0."""
    best = max(scores)
    tied = [i for i, s in enumerate(scores) if s == best]
    return 1.0 / len(tied) if answer in tied else 0.0


def text_baseline_scores(question: str, options: list[str]) -> dict[str, list[float]]:
    """Each text baseline's score of every option (the highest is its pick):
    `longest_option` the characters, `most_shared_words` the words shared with the
    question's stem, `option_in_question` the share of the option's words the stem holds."""
    stem = _stem_words(question)
    opt = [_option_words(o) for o in options]
    shared = [len(w & stem) for w in opt]
    return {
        "longest_option": [float(len(o.strip())) for o in options],
        "most_shared_words": [float(n) for n in shared],
        "option_in_question": [n / len(w) if w else 0.0 for n, w in zip(shared, opt, strict=True)],
    }


TEXT_BASELINES = ("longest_option", "most_shared_words", "option_in_question")


def answer_index(row: dict[str, Any]) -> int | None:
    """The answer's option index, or None when the row has no options or its letter names
    none of them (counted, not scored)."""
    letter, options = row.get("answer_letter"), row.get("options") or []
    if not letter or len(letter) != 1 or letter not in OPTION_LETTERS:
        return None
    i = OPTION_LETTERS.index(letter)
    return i if i < len(options) else None


def blind_audit(
    config: str, rows: list[dict[str, Any]], ask: Callable | None = None, seed: int = 0
) -> tuple[list[BaselineScore], list[LeakFlag], dict[str, int]]:
    """Score every baseline on one config's rows (see the module). Returns the scores,
    the flags, and the rows left out by reason (no options, answer not an option)."""
    skipped: Counter[str] = Counter()
    usable = []
    for r in rows:
        i = answer_index(r)
        if i is None:
            skipped["no options" if not r.get("options") else "answer letter not an option"] += 1
        else:
            usable.append((r, i))
    test = [(r, i) for r, i in usable if r["split"] == "test"]
    train = [(r, i) for r, i in usable if r["split"] == "train"]
    scored, note = (test, "") if test else (train, "no test rows: scored on train")
    credits: dict[str, list[float]] = {}
    all_credits: dict[str, list[float]] = {}
    letters = Counter(OPTION_LETTERS[i] for _, i in train) or Counter(
        OPTION_LETTERS[i] for _, i in scored
    )
    if letters:
        top = min(letters, key=lambda k: (-letters[k], k))
        credits["majority_letter"] = [float(OPTION_LETTERS[i] == top) for _, i in scored]
        all_credits["majority_letter"] = [float(OPTION_LETTERS[i] == top) for _, i in usable]
    picks = [text_baseline_scores(r["question"], r["options"]) for r, _ in usable]
    on_scored = [r["split"] == scored[0][0]["split"] for r, _ in usable] if scored else []
    for name in TEXT_BASELINES:
        all_credits[name] = [_credit(p[name], i) for p, (_, i) in zip(picks, usable, strict=True)]
        credits[name] = [c for c, keep in zip(all_credits[name], on_scored, strict=True) if keep]
    if ask is not None:
        credits["text_model"] = model_baseline(scored, ask)
    scores, flags = [], []
    level = 1 - (1 - FAMILY_LEVEL) / max(1, len(credits))
    for name, cred in credits.items():
        for s in _scores(config, name, scored, cred, note, seed, level):
            scores.append(s)
            if s.label == "all" and s.flagged:
                src = all_credits.get(name, cred)
                pool = usable if name in all_credits else scored
                ids = [r["id"] for (r, _), c in zip(pool, src, strict=True) if c == 1.0]
                flags.append(LeakFlag(config, name, s.accuracy, s.chance, len(ids), len(pool), ids))
    return scores, flags, dict(skipped)


def _scores(config, name, scored, credits, note, seed, level) -> list[BaselineScore]:
    """The baseline's score on all scored rows and per class; flagged when over chance +
    MARGIN and the interval at `level` (corrected for the config's several baselines:
    a clean config is tried 4-5 times) lies above chance."""
    side = scored[0][0]["split"] if scored else "test"
    out = []
    labels = sorted({r["label"] for r, _ in scored})
    for label in ["all", *labels]:
        keep = [k for k, (r, _) in enumerate(scored) if label == "all" or r["label"] == label]
        if not keep:
            continue
        cred = np.array([credits[k] for k in keep], dtype=float)
        chance = float(np.mean([1.0 / len(scored[k][0]["options"]) for k in keep]))
        videos = [scored[k][0]["video_id"] for k in keep]
        acc = float(cred.mean())
        low, high = interval(cred, videos, seed)
        # Flags are per config: a baseline that always picks one class scores 100% on
        # that class by construction, so per-class accuracies are shown, never flagged.
        flagged = (
            label == "all"
            and acc >= chance + MARGIN
            and interval(cred, videos, seed, level)[0] > chance
        )
        out.append(
            BaselineScore(
                config, name, label, side, len(keep), acc, chance, low, high, flagged, note
            )
        )
    return out


def model_baseline(scored: Iterable[tuple[dict[str, Any], int]], ask: Callable) -> list[float]:
    """A text-only model's credit per row: `ask([(question, options), ...])` returns a
    letter or None per question (model.py's `backend_answerer`: the question and its
    options, no video); 1.0 where it names the answer."""
    scored = list(scored)
    letters = ask([(r["question"], list(r["options"])) for r, _ in scored])
    return [float(a == OPTION_LETTERS[i]) for a, (_, i) in zip(letters, scored, strict=True)]
