"""The facts of a clip, and which of them a free text states: the checks of `short_qa`,
`caption_augmented` and `reasoning_revised`.

In: the taxonomy, `prompts/checks/fact_words.yaml` (words that state each value of its
vocabulary) and `prompts/checks/revision_leaks.txt` (phrases of a trace told its answer),
both found in the recipe's prompts folder first. Out: `Lexicon.mentions(text)`, the
(field, value) pairs a text states, found on whole words, longest phrase first and
without overlaps, so "turning left" is a motion and its "left" is no impact side; and
`clip_facts`, what the metadata says about a clip, clip-aware as the rule caption is (the
event facts only for the clip that holds the event).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vlm_autodrive.builders.core.errors import InputError
from vlm_autodrive.builders.core.taxonomy import Taxonomy

WORDS_FILE = "checks/fact_words.yaml"
LEAKS_FILE = "checks/revision_leaks.txt"
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


def find_file(name: str, folders: Sequence[Path]) -> Path:
    for folder in folders:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    raise InputError(folders[0], f"{name} not found here or in {[str(f) for f in folders[1:]]}")


@dataclass(frozen=True)
class Lexicon:
    """Phrases per (field, value), and the leak phrases of revised traces."""

    phrases: tuple[tuple[str, str, str], ...]  # (phrase lowercased, field, value), longest first
    leaks: tuple[str, ...]
    pattern: re.Pattern

    def mentions(self, text: str) -> dict[str, set[str]]:
        """{field: values} the text states (case-insensitive, whole words, no overlaps)."""
        out: dict[str, set[str]] = {}
        lookup = {p: (f, v) for p, f, v in reversed(self.phrases)}  # first listed wins
        for m in self.pattern.finditer(text.lower()):
            field, value = lookup[m.group(0)]
            out.setdefault(field, set()).add(value)
        return out

    def leak(self, text: str) -> str | None:
        """The first leak phrase the text contains, or None."""
        low = " ".join(text.lower().split())
        return next((p for p in self.leaks if p in low), None)


def load_lexicon(folders: Sequence[Path], taxonomy: Taxonomy) -> Lexicon:
    """Read and check both files; InputError naming the file and key when one is bad."""
    path = find_file(WORDS_FILE, folders)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
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
            words = table.get(value)
            if (
                not isinstance(words, list)
                or not words
                or not all(isinstance(w, str) and w.strip() for w in words)
            ):
                raise InputError(path, "need a non-empty list of phrases", f"{field}.{value}")
            phrases += [(" ".join(w.lower().split()), field, value) for w in words]
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise InputError(path, f"unknown fields {unknown} (known: {sorted(FIELDS)})")
    phrases.sort(key=lambda p: -len(p[0]))
    alternation = "|".join(re.escape(p) for p, _, _ in phrases)
    pattern = re.compile(rf"(?<![\w-])(?:{alternation})(?![\w-])")
    leaks_path = find_file(LEAKS_FILE, folders)
    leaks = tuple(
        " ".join(line.lower().split())
        for line in leaks_path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return Lexicon(tuple(phrases), leaks, pattern)


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
    actors = [a for a in [video_inputs.get("ego"), *video_inputs.get("others", [])] if a]
    if event or not video_has_event:
        for a in video_inputs.get("others", []):
            add("actor_type", a.get("type"))
        for a in actors:
            add("motion", a.get("motion"))
    facts["event_type"] = {label}  # the label is known for every clip
    if event:
        for a in actors:
            add("impact_side", a.get("impact_side"))
        add("blame", video_inputs.get("blame"))
        add("evasive_action", video_inputs.get("evasive_action"))
    return {f: tuple(sorted(v)) for f, v in sorted(facts.items())}


def contrary(stated: Mapping[str, Iterable[str]], facts: Mapping[str, Iterable[str]]) -> list[str]:
    """`field: value` of each stated value that contradicts the facts of its field
    (a field the facts say nothing about contradicts nothing)."""
    out = []
    for field, values in sorted(stated.items()):
        known = set(facts.get(field, ()))
        if known:
            out += [f"{field}: {v!r}" for v in sorted(set(values) - known)]
    return out
