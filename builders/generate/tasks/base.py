"""What every model-made split module provides, and the clip inputs they share.

A split module defines one `ModelSplit` subclass: how to fill its prompt template for a
clip, which output constraint to send, and how to parse one completion into rows (or
raise ParseError with the reason). The stage (`builders/generate/stage.py`) does the rest:
rendering, the cache, the backend, failures and writing the config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from vlm_autodrive.builders.core.answers import option_letters
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.dataset.rows import COMMON_FIELDS, SplitRow
from vlm_autodrive.builders.generate.backends.base import Completion
from vlm_autodrive.builders.generate.facts import Lexicon, load_lexicon
from vlm_autodrive.builders.generate.parsing import check_output_text


@dataclass(frozen=True)
class ClipInput:
    """One clip and the texts the prompts are made from (rows of earlier configs)."""

    clip_id: str
    video_id: str
    label: str
    split: str  # train | test
    video: str  # clip path relative to the build folder
    video_path: str  # absolute, for video backends
    caption: str | None  # the detailed caption (caption_metadata config)
    vlm_caption: str | None  # the short VLM caption (caption_vlm config), when built
    mcq_question: str | None  # the clip's MCQ (mcq config), when built
    mcq_options: tuple[str, ...] = ()
    mcq_answer_letter: str | None = None
    # The clip file's sha256 when known before it exists (the dry run plans clips not cut
    # yet: a `NOT_CUT` value keys requests no cache holds); None: hash the file.
    video_sha256: str | None = None
    # What the metadata says about the clip, {field: values} (builders/generate/facts.py).
    facts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The clip's cause question (cause_vqa config), when its video has one.
    cause_question: str | None = None
    cause_options: tuple[str, ...] = ()
    cause_answer_letter: str | None = None
    # reasoning_revised: the failed reasoning_mcq sample this input revises.
    revises: str | None = None  # the failure's id
    failed_sample: int = 0
    failed_reasoning: str | None = None
    failed_answer: str | None = None
    # The independent check of a revised trace: the candidate row it decides on.
    candidate: Any = None


def with_vlm_caption(clip: ClipInput, text: str | None) -> ClipInput:
    """`dataclasses.replace(clip, vlm_caption=text)`, without calling `__init__` again
    (the fields are the clip's own; at 50,000 clips `replace` cost a third of a second)."""
    new = object.__new__(ClipInput)
    new.__dict__.update(clip.__dict__, vlm_caption=text)
    return new


NOT_CUT = "not cut yet:"  # prefix of the video hash of a clip the dry run plans


def cosmos_target(reasoning: str, letter: str) -> str:
    """The Cosmos-Reason1 training target: reasoning in <think>, the letter in <answer>."""
    return f"<think>\n{reasoning.strip()}\n</think>\n\n<answer>\n{letter}\n</answer>"


def lettered(question: str, options: list[str], instruction: str) -> str:
    """A question with its options as `A. ...` lines, as the model will be asked it."""
    lines = [
        question.strip(),
        *(f"{x}. {o}" for x, o in zip(option_letters(len(options)), options)),
    ]
    return "\n".join([*lines, instruction])


class ModelSplit:
    """Base of the split modules' classes; subclasses set the class attributes."""

    name: ClassVar[str]
    prompt: ClassVar[str]  # template file in prompts/
    inputs: ClassVar[tuple[str, ...]]  # the template's variables
    row_type: ClassVar[type[SplitRow]]
    schema: ClassVar[pa.Schema]
    description: ClassVar[str]
    needs_video: ClassVar[bool] = False

    # Whether the parser checks facts or phrases: then `prepare` loads the word lists
    # (facts.py), which are inputs of the split's key (stamp.py `word_lists`).
    reads_word_lists: ClassVar[bool] = False
    lexicon: Lexicon | None = None

    def prepare(self, folders: list[Path], taxonomy: Taxonomy) -> None:
        """Load what the parser needs besides the template (the word lists, when it reads
        them), at build start."""
        if self.reads_word_lists:
            self.lexicon = load_lexicon(folders, taxonomy)

    def expand(self, clips: list[ClipInput], earlier: list[Any]) -> list[ClipInput]:
        """The inputs of this split: one per clip by default; `earlier` holds the rows and
        failures of the splits built before it in this run (reasoning_revised reads the
        failures of reasoning_mcq)."""
        return clips

    def memo_key(self, clip: ClipInput) -> tuple:
        """The clip fields the prompt is made from: inputs that share them share a render."""
        return (clip.caption, clip.vlm_caption, clip.mcq_question, clip.label)

    def context(self, clip: ClipInput, taxonomy: Taxonomy) -> dict[str, Any] | None:
        """Template inputs for a clip, or None when the clip has nothing to ask about."""
        raise NotImplementedError

    def sample_contexts(self, taxonomy: Taxonomy) -> list[dict[str, Any]]:
        """Complete contexts rendered once at load, so a broken template fails early."""
        raise NotImplementedError

    def constraint(
        self, clip: ClipInput, reasoning_parser: bool, taxonomy: Taxonomy
    ) -> dict[str, Any] | None:
        """The output constraint (see GenerationRequest), or None."""
        return None

    def checked_parse(
        self,
        completion: Completion,
        clip: ClipInput,
        sample: int,
        common: dict[str, Any],
        taxonomy: Taxonomy,
    ) -> list[SplitRow]:
        """`parse`, with the output refused (ParseError) when its text, its reasoning or
        any text of its rows (JSON can spell `\\u001b`) holds control characters or
        invalid Unicode: what the stage calls."""
        check_output_text(completion.text, "output")
        check_output_text(completion.reasoning, "reasoning")
        rows = self.parse(completion, clip, sample, common, taxonomy)
        for row in rows:
            for f in fields(row):
                name, value = f.name, getattr(row, f.name)
                for text in value if isinstance(value, list) else [value]:
                    if isinstance(text, str):
                        check_output_text(text, f"row's {name}")
        return rows

    def parse(
        self,
        completion: Completion,
        clip: ClipInput,
        sample: int,
        common: dict[str, Any],
        taxonomy: Taxonomy,
    ) -> list[SplitRow]:
        """Rows from one completion; raises ParseError (bad output) or Filtered."""
        raise NotImplementedError


class Filtered(ValueError):
    """A well-formed output that the split's rule does not keep (e.g. a wrong answer)."""


TEXT_LEAK = "the trace cites the text it was written from"  # start of the filter's reason


def reject_text_leak(lexicon: Any, trace: str) -> None:
    """Filtered when a reasoning trace holds a phrase of `prompts/checks/text_leaks.txt`
    ("the description", "according to the caption"): the LLM wrote it from the captions,
    and a model trained on it learns to cite a description it never sees. `lexicon`: the
    split's `facts.Lexicon`, loaded in `prepare`."""
    assert lexicon is not None, "prepare() loads the phrase lists first"
    if phrase := lexicon.text_leak(trace):
        raise Filtered(f"{TEXT_LEAK}: {phrase!r}")


@dataclass(slots=True)
class ReasoningRow(SplitRow):
    """A row answered with reasoning: the question as asked (lettered options), the
    answer as `X. text`, the reasoning, and the Cosmos-Reason1 training `target`."""

    sample: int
    question: str
    options: list[str]
    answer_letter: str
    answer: str
    reasoning: str
    target: str


REASONING_SCHEMA = pa.schema(
    [
        *COMMON_FIELDS,
        ("sample", pa.int32()),
        ("question", pa.string()),
        ("options", pa.list_(pa.string())),
        ("answer_letter", pa.string()),
        ("answer", pa.string()),
        ("reasoning", pa.string()),
        ("target", pa.string()),
    ]
)
