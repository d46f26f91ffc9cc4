"""The `caption_augmented` split: paraphrases of each clip's detailed caption.

In: the clip's detailed caption (the rule caption of `caption_metadata`) and its facts
from the metadata. Out: one `CaptionAugmentedRow` per sample; `n` in the split's config
is k, the paraphrases asked per clip. A paraphrase is kept only when its length is
0.5-1.6x the caption's (longer ones add what nothing can check), it still states
every fact the rule caption states (event type, actors, motion, impact side, blame,
evasive action, weather, light, road, scene: the caption's values that
`prompts/checks/fact_words.yaml` finds in it) and no value of the taxonomy's vocabulary
that the metadata contradicts (a Collision on the front told as one on the rear is
`filtered`, naming the fact). Plain text out, no constraint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.dataset.rows import COMMON_FIELDS, SplitRow, content_hash, row_id
from vlm_autodrive.builders.generate.degenerate import check_content
from vlm_autodrive.builders.generate.facts import Lexicon, contrary
from vlm_autodrive.builders.generate.parsing import require
from vlm_autodrive.builders.generate.tasks.base import ClipInput, Filtered, ModelSplit

QUESTION = "Describe in detail what happens in this dashcam video."
MIN_WORDS = 5
# A paraphrase this much longer than its caption adds what no check can verify (the
# demo's 135M model kept every fact and added "a government agency fined a million
# dollars"); this much shorter, it can hardly keep the facts in prose.
MAX_LENGTH_RATIO, MIN_LENGTH_RATIO = 1.6, 0.5


@dataclass(slots=True)
class CaptionAugmentedRow(SplitRow):
    sample: int
    question: str
    answer: str
    source_caption: str  # the rule caption it paraphrases


CAPTION_AUGMENTED_SCHEMA = pa.schema(
    [
        *COMMON_FIELDS,
        ("sample", pa.int32()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("source_caption", pa.string()),
    ]
)


def stated_facts(
    lexicon: Lexicon, caption: str, facts: dict[str, tuple[str, ...]]
) -> dict[str, set[str]]:
    """The facts of the clip that the rule caption states: {field: values}."""
    said = lexicon.mentions(caption)
    out = {f: set(vs) & set(facts.get(f, ())) for f, vs in said.items()}
    return {f: vs for f, vs in out.items() if vs}


class CaptionAugmented(ModelSplit):
    name = "caption_augmented"
    prompt = "caption_augmented.jinja"
    inputs = ("caption",)
    row_type = CaptionAugmentedRow
    schema = CAPTION_AUGMENTED_SCHEMA
    description = (
        "Paraphrases of each clip's detailed caption by a text LLM, for linguistic variety; "
        "kept only when every fact of the caption survives and none is contradicted."
    )
    reads_word_lists = True

    def memo_key(self, clip: ClipInput) -> tuple:
        return (clip.caption,)

    def context(self, clip: ClipInput, taxonomy: Taxonomy) -> dict[str, Any] | None:
        return {"caption": clip.caption} if clip.caption else None

    def sample_contexts(self, taxonomy: Taxonomy) -> list[dict[str, Any]]:
        return [{"caption": "A car drives on a highway in the rain."}]

    def parse(self, completion, clip, sample, common, taxonomy) -> list[SplitRow]:
        assert self.lexicon is not None, "prepare() loads the word lists first"
        text = " ".join(completion.text.split())
        require(text != "", "empty output")
        require(completion.finish_reason != "length", "cut off at max_tokens")
        require(len(text.split()) >= MIN_WORDS, f"{len(text.split())} words: not a caption")
        check_content(text, "paraphrase")
        if text.lower() == " ".join(clip.caption.split()).lower():
            raise Filtered("the caption itself, not a paraphrase")
        ratio = len(text.split()) / max(1, len(clip.caption.split()))
        if not MIN_LENGTH_RATIO <= ratio <= MAX_LENGTH_RATIO:
            raise Filtered(
                f"{len(text.split())} words for a caption of {len(clip.caption.split())} "
                f"(a paraphrase keeps {MIN_LENGTH_RATIO}-{MAX_LENGTH_RATIO}x its length)"
            )
        facts = dict(clip.facts)
        said = self.lexicon.mentions(text)
        missing = [
            f"{f}: {v!r}"
            for f, vs in sorted(stated_facts(self.lexicon, clip.caption, facts).items())
            for v in sorted(vs - said.get(f, set()))
        ]
        if missing:
            raise Filtered(f"drops facts of the caption: {'; '.join(missing)}")
        if bad := contrary(said, facts):
            truth = "; ".join(f"{f} {', '.join(facts[f.split(':')[0]])}" for f in bad)
            raise Filtered(f"contradicts the metadata: {'; '.join(bad)} (the clip: {truth})")
        return [
            CaptionAugmentedRow(
                id=row_id(self.name, clip.clip_id, sample),
                content_hash=content_hash(QUESTION, text, clip.video),
                sample=sample,
                question=QUESTION,
                answer=text,
                source_caption=clip.caption,
                **common,
            )
        ]


SPLIT = CaptionAugmented()
