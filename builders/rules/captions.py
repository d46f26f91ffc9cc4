"""Metadata -> the detailed caption of a clip, through `templates/captions/detailed.jinja`.

In: a source video's metadata (the `metadata` struct of `ingest/videos.parquet`), and the
clip (its label and `event_offset` from `chunk/clips.parquet`). Out: one paragraph.

This module prepares the template's inputs; the wording lives in the templates. It
normalises every metadata value against the taxonomy's vocabulary: a missing value is
None (its sentence is dropped), a value outside the vocabulary becomes the string
`unusual` (phrased generically) and is counted, per field and value, for the build
summary. The inputs are documented in templates/README.md; CAPTION_INPUTS is the list
that the template is checked against at load.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.jinja_env import LoadedTemplate, load_template
from vlm_autodrive.builders.core.taxonomy import Taxonomy

UNUSUAL = "unusual"
CAPTION_TEMPLATE = "captions/detailed.jinja"

# Scalar metadata fields, each checked against the vocabulary list of the same name.
SCENE_FIELDS = ("weather", "light", "road", "scene", "blame", "evasive_action")
# Actor fields and the vocabulary list each is checked against.
ACTOR_FIELDS = {
    "role": "actor_role",
    "type": "actor_type",
    "motion": "motion",
    "impact_side": "impact_side",
}
CAPTION_INPUTS = (
    "label",
    "event",
    "event_description",
    "event_offset",
    "video_has_event",
    *SCENE_FIELDS,
    "ego",
    "others",
)


class MetadataNormalizer:
    """Maps raw metadata to template values and counts what fell outside the vocabulary.

    `oov[field][raw value]` counts occurrences (one per video and field; one per actor
    for actor fields); `missing[field]` counts videos without the field.
    """

    def __init__(self, taxonomy: Taxonomy):
        if any(UNUSUAL in values for values in taxonomy.vocab.values()):
            raise ValueError(
                f"taxonomy vocab may not contain {UNUSUAL!r}: the caption rules use it "
                "for values outside the vocabulary"
            )
        # A field without a vocabulary list passes its values through unchanged.
        self.vocab = {k: frozenset(v) for k, v in taxonomy.vocab.items()}
        self.oov: dict[str, Counter[str]] = {}
        self.missing: Counter[str] = Counter()

    def value(self, field: str, raw: Any) -> str | None:
        if raw is None or raw == "":
            return None
        allowed = self.vocab.get(field)
        if allowed is None or raw in allowed:
            return raw
        self.oov.setdefault(field, Counter())[str(raw)] += 1
        return UNUSUAL

    def video_inputs(self, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
        """The video-level inputs: the scalar fields, `ego` and `others`."""
        md = metadata or {}
        out: dict[str, Any] = {}
        for f in SCENE_FIELDS:
            out[f] = self.value(f, md.get(f))
            if out[f] is None:
                self.missing[f] += 1
        ego = None
        others = []
        for raw in md.get("actors") or []:
            actor = {k: self.value(vocab, raw.get(k)) for k, vocab in ACTOR_FIELDS.items()}
            if actor["role"] == "ego":
                # A second ego actor is a data error; the first one describes the ego.
                ego = ego or actor
            else:
                others.append(actor)
        if not md.get("actors"):
            self.missing["actors"] += 1
        out["ego"] = ego
        out["others"] = others
        return out

    def report(self) -> dict[str, dict[str, int]]:
        """Out-of-vocabulary counts, `{field: {value: count}}`, sorted for stable output."""
        return {f: dict(sorted(c.items())) for f, c in sorted(self.oov.items())}


def caption_inputs(
    video: Mapping[str, Any],
    video_inputs: Mapping[str, Any],
    label: str,
    event_offset: float | None,
    taxonomy: Taxonomy,
) -> dict[str, Any]:
    """The caption inputs of one clip.

    `event` is set only when the clip's label is an event class: the chunker gives an
    event label to the clip that holds the event (or, with `ambiguous: event`, one that
    shows part of it), so every other clip of the video reads as scene-level only.
    """
    is_event = taxonomy.is_event(label)
    return {
        "label": label,
        "event": label if is_event else None,
        "event_description": _description(taxonomy, label) if is_event else None,
        # Rounded so that clips whose offsets differ by float noise share a caption.
        "event_offset": round(event_offset, 1) if is_event and event_offset is not None else None,
        "video_has_event": video.get("event_time") is not None,
        **video_inputs,
    }


def _description(taxonomy: Taxonomy, label: str) -> str:
    return next(c.description for c in taxonomy.classes if c.name == label)


def load_caption_template(taxonomy: Taxonomy, folders: Sequence[str | Path]) -> LoadedTemplate:
    """Load and check captions/detailed.jinja against samples covering the whole vocabulary."""
    return load_template(
        CAPTION_TEMPLATE, folders, CAPTION_INPUTS, samples=list(caption_samples(taxonomy))
    )


def caption_samples(taxonomy: Taxonomy) -> Iterator[dict[str, Any]]:
    """Complete inputs that together use every vocabulary value, `unusual`, and None,
    for every class, with and without actors: rendering them all at load proves that
    the phrase tables are complete and that no attribute is misspelt."""
    vocab = {k: list(v) for k, v in taxonomy.vocab.items()}

    def pick(field: str, i: int) -> str | None:
        values = vocab.get(field) or ["value"]
        return values[i % len(values)]

    width = max([len(v) for v in vocab.values()] + [1])
    events: list[str | None] = [None, *[c.name for c in taxonomy.classes if c.is_event]]
    for event in events:
        base = {
            "label": event or taxonomy.normal,
            "event": event,
            "event_description": _description(taxonomy, event) if event else None,
        }
        for i in range(width):

            def actor(role: str, j: int) -> dict[str, Any]:
                return {
                    "role": role,
                    "type": pick("actor_type", j),
                    "motion": pick("motion", j),
                    "impact_side": pick("impact_side", j),
                }

            others = [actor("other", i + 1 + k) for k in range(i % 3)]
            yield {
                **base,
                "event_offset": 2.5 if i % 2 else None,
                "video_has_event": bool(i % 2) or event is not None,
                **{f: pick(f, i) for f in SCENE_FIELDS},
                "ego": actor("ego", i) if i % 4 != 3 else None,
                "others": others,
            }
        for fill in (None, UNUSUAL):
            nobody = {"role": fill, "type": fill, "motion": fill, "impact_side": fill}
            for others in ([], [dict(nobody, role="other")], [dict(nobody, role="other")] * 2):
                yield {
                    **base,
                    "event_offset": None,
                    "video_has_event": event is not None,
                    **dict.fromkeys(SCENE_FIELDS, fill),
                    "ego": None if fill is None else dict(nobody, role="ego"),
                    "others": others,
                }


class CaptionRenderer:
    """Renders a template (or one block of it) once per distinct input: the scene-level
    clips of a video share one render, about two renders per video in all."""

    def __init__(self, template: LoadedTemplate, block: str | None = None, stored=None):
        self.template = template
        self.block = block
        self.stored = stored  # a render_memo.RenderMemo: the last run's texts, or None
        self._memo: dict[tuple, str] = {}
        self.digests: dict[tuple, str] = {}  # key -> the render memo's digest (`stored`)

    @property
    def renders(self) -> int:
        return len(self._memo)

    def caption(self, key: tuple, inputs: Mapping[str, Any]) -> str:
        """The text for `inputs`; `key` must identify them (video id, event, offset)."""
        text = self._memo.get(key)
        if text is None:

            def render() -> str:
                return render_or_explain(self.template, inputs, key, self.block)

            if self.stored is None:
                text = render()
            else:  # the template's sha256 covers every file it includes
                what = render_what(self.template, self.block)
                self.digests[key], text = self.stored.lookup(what, inputs, render)
            self._memo[key] = text
        return text


def render_what(template: LoadedTemplate, block: str | None) -> str:
    """The render memo's name of a template block (its sha256 covers every include)."""
    return f"{template.sha256}:{block}"


def render_or_explain(
    template: LoadedTemplate, inputs: Mapping[str, Any], what: Any, block: str | None = None
) -> str:
    """Render, turning a template error into a ValueError naming the template and the row."""
    import jinja2

    try:
        if block is None:
            return template.render(inputs)
        return template.render_block(block, inputs)
    except jinja2.TemplateError as e:
        raise ValueError(f"{template.name}: {type(e).__name__}: {e} (rendering {what})") from e
