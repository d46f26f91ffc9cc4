"""The facts of a clip, and which of them a free text states: the checks of `short_qa`,
`vqa`, `caption_augmented` and the reasoning splits.

In: the taxonomy, `prompts/checks/fact_words.yaml` (words that state each value of its
vocabulary; `answers:`, the bare words an answer to a question on a field may use, such
as "Rear"; `subjects:`, the words that name the ego vehicle or another road user),
`prompts/checks/revision_leaks.txt` (phrases of a trace told its answer) and
`prompts/checks/text_leaks.txt` (phrases of a trace written from text, not from the
video), all found in the recipe's prompts folder first. Out: `Lexicon.mentions(text)`,
the (field, value) pairs a text states, found on whole words, longest phrase first and
without overlaps, so "turning left" is a motion and its "left" is no impact side;
`Lexicon.subject(text)`, whether a question is about the ego vehicle or the other road
user; `clip_facts`, what the metadata says about a clip, clip-aware as the rule caption
is (the event facts only for the clip that holds the event), with the motion and impact
side of the ego (`ego.motion`) and of the other road users (`other.motion`) apart; and
`contrary`, the stated values the facts contradict.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vlm_autodrive.builders.core.errors import InputError
from vlm_autodrive.builders.core.strict import read_text_file
from vlm_autodrive.builders.core.taxonomy import Taxonomy

WORDS_FILE = "checks/fact_words.yaml"
LEAKS_FILE = "checks/revision_leaks.txt"
TEXT_LEAKS_FILE = "checks/text_leaks.txt"
# Fields checked, and the taxonomy vocabulary list each takes its values from.
FIELDS = {
    "event_type": None,  # the classes
    "weather": "weather",
    "light": "light",
    "road": "road",
    "scene": "scene",
    "actor_type": "actor_type",
    "motion": "motion",
    "impact_side": "impact_side",
    "blame": "blame",
    "evasive_action": "evasive_action",
}
EVENT_FIELDS = ("event_type", "impact_side", "blame", "evasive_action")
ACTOR_FIELDS = ("actor_type", "motion")
# The fields told per road user: `clip_facts` also keeps them per role, as `ego.motion`.
ROLES = ("ego", "other")
ROLE_FIELDS = ("motion", "impact_side")
# What a clip without an event can state of the event fields: nothing, but "no evasive
# action" (a Normal Driving clip has no impact, no one at fault, nothing to avoid).
NO_EVENT_ALLOWS = {"impact_side": set(), "blame": set(), "evasive_action": {"none"}}


# How a reason names the road user a role stands for ("the metadata of the ego vehicle").
ROLE_NAMES = {"ego": "the ego vehicle", "other": "the other road users"}


def whose(role: str | None) -> str:
    """ " of the ego vehicle", " of the other road users", or "" for no role."""
    return f" of {ROLE_NAMES[role]}" if role else ""


def role_key(role: str, field: str) -> str:
    """The facts' key of a field told per road user: `ego.motion`, `other.impact_side`."""
    return f"{role}.{field}"


def find_file(name: str, folders: Sequence[Path]) -> Path:
    for folder in folders:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    raise InputError(folders[0], f"{name} not found here or in {[str(f) for f in folders[1:]]}")


@dataclass(frozen=True)
class Lexicon:
    """Phrases per (field, value), the bare answer words per field, the subject words,
    the leak phrases of revised traces and the phrases of traces written from text."""

    phrases: tuple[tuple[str, str, str], ...]  # (phrase lowercased, field, value), longest first
    leaks: tuple[str, ...]
    pattern: re.Pattern = dataclasses.field(compare=False, repr=False)  # made from `phrases`
    answers: tuple[tuple[str, str, str], ...] = ()  # (phrase, field, value) of `answers:`
    subjects: tuple[tuple[str, str], ...] = ()  # (phrase, role) of `subjects:`
    text_leaks: tuple[str, ...] = ()
    # (lookup, pattern) per asked field and of the subject words, made on first use.
    _made: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def content(self) -> dict[str, Any]:
        """What the word lists hold (every field but those made from them): the inputs of
        a split's key that reads them (stamp.py `word_lists`)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.compare}

    def mentions(self, text: str, asked: str | None = None) -> dict[str, set[str]]:
        """{field: values} the text states (case-insensitive, whole words, no overlaps);
        `asked`: the field a question asks about, whose bare answer words (`answers:`,
        "Rear" for an impact side) count too and win over the other fields' phrases."""
        if asked not in self._made:
            phrases = tuple(a for a in self.answers if a[1] == asked) + self.phrases
            lookup: dict[str, tuple[str, str]] = {}
            for p, f, v in phrases:
                lookup.setdefault(p, (f, v))  # first listed wins
            self._made[asked] = (lookup, _pattern(tuple(lookup)))
        lookup, pattern = self._made[asked]
        out: dict[str, set[str]] = {}
        for m in pattern.finditer(text.lower()):
            field, value = lookup[m.group(0)]
            out.setdefault(field, set()).add(value)
        return out

    def roles(self, text: str) -> set[str]:
        """The road users a text names: `ego` (the ego vehicle, by `subjects:`), `other`
        (another road user, by `subjects:` or its type); "ego car" is the ego alone."""
        if "subjects" not in self._made:
            lookup = {p: r for p, r in self.subjects}
            for p, f, _ in self.phrases:
                if f == "actor_type":
                    lookup.setdefault(p, "other")
            self._made["subjects"] = (lookup, _pattern(tuple(lookup)))
        lookup, pattern = self._made["subjects"]
        return {lookup[m.group(0)] for m in pattern.finditer(text.lower())}

    def subject(self, question: str, answer: str = "") -> str | None:
        """`ego` or `other`: the one road user a question is about, when the question
        names one and its answer names no other; else None. A question that names both
        ("Which part of the ego vehicle does the bus hit?" reads like "Where does the
        bus hit the ego vehicle?" to words alone) or neither tells no subject."""
        asked = self.roles(question)
        if len(asked) != 1 or not self.roles(answer) <= asked:
            return None
        return asked.pop()

    def leak(self, text: str) -> str | None:
        """The first leak phrase the text contains, or None."""
        low = " ".join(text.lower().split())
        return next((p for p in self.leaks if p in low), None)

    def text_leak(self, text: str) -> str | None:
        """The first phrase of `text_leaks.txt` the text contains on whole words, or None."""
        low = " ".join(text.lower().split())
        return next(
            (p for p in self.text_leaks if re.search(rf"(?<![\w-]){re.escape(p)}(?![\w-])", low)),
            None,
        )


@functools.lru_cache(maxsize=64)
def _pattern(phrases: tuple[str, ...]) -> re.Pattern:
    """One regex of the phrases on whole words, longest first (an alternation takes the
    first alternative that matches, so "turning left" wins over "left")."""
    alternation = "|".join(re.escape(p) for p in sorted(phrases, key=lambda p: -len(p)))
    return re.compile(rf"(?<![\w-])(?:{alternation})(?![\w-])")


def load_lexicon(folders: Sequence[Path], taxonomy: Taxonomy) -> Lexicon:
    """Read and check the three files; InputError naming the file and key when one is bad."""
    path = find_file(WORDS_FILE, folders)
    try:
        data = yaml.safe_load(read_text_file(path, "word list"))
    except yaml.YAMLError as e:
        raise InputError(path, f"not YAML: {e}") from None
    if not isinstance(data, dict):
        raise InputError(path, "need a mapping of field -> value -> phrases")
    phrases: list[tuple[str, str, str]] = []
    for field, vocab in FIELDS.items():
        values = taxonomy.names if vocab is None else taxonomy.vocab.get(vocab, [])
        table = data.get(field)
        if values and not isinstance(table, dict):
            raise InputError(path, "missing (a list of phrases per value)", field)
        for value in values:
            phrases += [
                (w, field, value) for w in _words(path, table.get(value), f"{field}.{value}")
            ]
    unknown = sorted(set(data) - set(FIELDS) - {"answers", "subjects"})
    if unknown:
        raise InputError(path, f"unknown fields {unknown} (known: {sorted(FIELDS)})")
    answers: list[tuple[str, str, str]] = []
    for field in _table(path, data, "answers"):
        if field not in FIELDS:
            raise InputError(path, f"not a field (known: {sorted(FIELDS)})", f"answers.{field}")
        values = taxonomy.names if FIELDS[field] is None else taxonomy.vocab.get(FIELDS[field], [])
        for value, words in _table(path, data["answers"], field).items():
            if value not in values:
                raise InputError(path, f"not a value of {field} {values}", f"answers.{field}")
            answers += [(w, field, value) for w in _words(path, words, f"answers.{field}.{value}")]
    subjects: list[tuple[str, str]] = []
    for role, words in _table(path, data, "subjects").items():
        if role not in ROLES:
            raise InputError(path, f"need {list(ROLES)}", f"subjects.{role}")
        subjects += [(w, role) for w in _words(path, words, f"subjects.{role}")]
    phrases.sort(key=lambda p: -len(p[0]))
    return Lexicon(
        tuple(phrases),
        _lines(find_file(LEAKS_FILE, folders)),
        _pattern(tuple(p for p, _, _ in phrases)),
        tuple(answers),
        tuple(subjects),
        _lines(find_file(TEXT_LEAKS_FILE, folders)),
    )


def _words(path: Path, words: Any, key: str) -> list[str]:
    """A non-empty list of phrases, lowercased with single spaces; else InputError."""
    if (
        not isinstance(words, list)
        or not words
        or not all(isinstance(w, str) and w.strip() for w in words)
    ):
        raise InputError(path, "need a non-empty list of phrases", key)
    return [" ".join(w.lower().split()) for w in words]


def _table(path: Path, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """An optional mapping under `key` ({} when absent); else InputError."""
    table = data.get(key) or {}
    if not isinstance(table, dict):
        raise InputError(path, "need a mapping", key)
    return table


def _lines(path: Path) -> tuple[str, ...]:
    """The phrases of a list file: one a line, lowercased, `#` comments and blanks skipped."""
    return tuple(
        " ".join(line.lower().split())
        for line in read_text_file(path, "phrase list").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )


def clip_facts(
    video_inputs: Mapping[str, Any], label: str, video_has_event: bool, taxonomy: Taxonomy
) -> dict[str, tuple[str, ...]]:
    """What the metadata says about one clip, as the rule caption says it: the scene for
    every clip, the actors for the event clip and the clips of a video without event,
    the event facts for the event clip only, the label for every clip. Values outside
    the vocabulary are left out (nothing to check them against)."""
    vocab = {f: set(taxonomy.vocab.get(v, [])) for f, v in FIELDS.items() if v}
    facts: dict[str, set[str]] = {}

    def add(field: str, value: Any) -> None:
        if value and value in vocab.get(field, ()):
            facts.setdefault(field, set()).add(value)

    for f in ("weather", "light", "road", "scene"):
        add(f, video_inputs.get(f))
    event = taxonomy.is_event(label)
    ego, others = video_inputs.get("ego"), [a for a in video_inputs.get("others", []) if a]
    by_role = {"ego": [ego] if ego else [], "other": others}

    def add_actors(field: str, key: str) -> None:
        # Merged under `field` (a text that names no road user may state any one's
        # value) and per role under `ego.field` / `other.field`.
        for role, actors in by_role.items():
            for a in actors:
                add(field, a.get(key))
                if field in ROLE_FIELDS and a.get(key) in vocab[field]:
                    facts.setdefault(role_key(role, field), set()).add(a[key])

    if event or not video_has_event:
        for a in others:
            add("actor_type", a.get("type"))
        add_actors("motion", "motion")
    facts["event_type"] = {label}  # the label is known for every clip
    if event:
        add_actors("impact_side", "impact_side")
        add("blame", video_inputs.get("blame"))
        add("evasive_action", video_inputs.get("evasive_action"))
    return {f: tuple(sorted(v)) for f, v in sorted(facts.items())}


def subject_facts(
    facts: Mapping[str, tuple[str, ...]], role: str | None
) -> dict[str, tuple[str, ...]]:
    """The facts as they hold for a text about one road user: the motion and impact side
    of `role` alone (none when the metadata has none for it). With `role` None, or facts
    without per-role keys (made before roles were kept), the merged facts: lenient, any
    road user's value passes, as the subject cannot be told."""
    out = {f: v for f, v in facts.items() if "." not in f}
    if role is None or not any("." in f for f in facts):
        return out
    for field in ROLE_FIELDS:
        out.pop(field, None)
        if values := facts.get(role_key(role, field)):
            out[field] = values
    return out


def contrary(
    stated: Mapping[str, Iterable[str]],
    facts: Mapping[str, Iterable[str]],
    event: bool | None = None,
) -> list[str]:
    """`field: value` of each stated value that contradicts the facts of its field (a
    field the facts say nothing about contradicts nothing); with `event` False (the clip's
    label is no event class), also each impact side, fault or evasive action but "none"
    stated: a clip without an event has none of them (`NO_EVENT_ALLOWS`)."""
    out = []
    for field, values in sorted(stated.items()):
        known = set(facts.get(field, ()))
        if event is False and field in NO_EVENT_ALLOWS:
            known = NO_EVENT_ALLOWS[field]
            out += [f"{field}: {v!r} (no event)" for v in sorted(set(values) - known)]
        elif known:
            out += [f"{field}: {v!r}" for v in sorted(set(values) - known)]
    return out


def contradiction(
    stated: Mapping[str, Iterable[str]],
    facts: Mapping[str, Iterable[str]],
    event: bool | None,
    role: str | None = None,
) -> str | None:
    """Why a text that states `stated` contradicts `facts` (`contrary`), with what the
    metadata (of `role`'s road user) holds for each field stated, or None when it does
    not: "motion: 'turning right'; the metadata of the ego vehicle: motion going straight"."""
    bad = contrary(stated, facts, event)
    if not bad:
        return None
    holds = "; ".join(f"{f} {', '.join(facts.get(f, ())) or 'none'}" for f in sorted(stated))
    return f"{'; '.join(bad)}; the metadata{whose(role)}: {holds}"
