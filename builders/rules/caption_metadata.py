"""The `caption_metadata` split: per clip, an instruction to describe the clip and the
detailed caption made from its video's metadata (templates/caption_metadata.jinja, whose
answer block includes captions/detailed.jinja).

In: clips (rows of `chunk/clips.parquet` as dicts), each clip's side, the videos' caption
inputs (see captions.MetadataNormalizer), the taxonomy and the loaded template.
Out: `CaptionMetadataRow`s, one per clip that has a side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from vlm_autodrive.builders.core.jinja_env import LoadedTemplate, load_template
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.dataset.rows import COMMON_FIELDS, SplitRow, content_hash, row_id
from vlm_autodrive.builders.rules.captions import (
    CAPTION_INPUTS,
    CaptionRenderer,
    caption_inputs,
    caption_samples,
)

CONFIG = "caption_metadata"
GENERATOR = "rule:caption_metadata"
TEMPLATE = "caption_metadata.jinja"
BLOCKS = ("question", "answer")


@dataclass(slots=True)
class CaptionMetadataRow(SplitRow):
    """A row of the `caption_metadata` config: `question` (the instruction, user turn)
    and `answer` (the detailed caption, assistant turn)."""

    question: str
    answer: str


CAPTION_METADATA_SCHEMA = pa.schema(
    [*COMMON_FIELDS, ("question", pa.string()), ("answer", pa.string())]
)


def load_caption_metadata_template(
    taxonomy: Taxonomy, folders: Sequence[str | Path]
) -> LoadedTemplate:
    """Load and check templates/caption_metadata.jinja on the caption samples."""
    return load_template(
        TEMPLATE, folders, CAPTION_INPUTS, samples=list(caption_samples(taxonomy)), blocks=BLOCKS
    )


def build_caption_metadata(
    clips: Iterable[Mapping[str, Any]],
    sides: Mapping[str, str],
    videos: Mapping[str, Mapping[str, Any]],
    video_inputs: Mapping[str, Mapping[str, Any]],
    taxonomy: Taxonomy,
    template: LoadedTemplate,
    stored: Any = None,
    digests: dict[str, list[str]] | None = None,
) -> tuple[list[CaptionMetadataRow], int]:
    """One row per clip with a side, and the number of clips skipped because their caption
    came out empty (no metadata at all and no event): an empty answer teaches nothing.
    `videos` and `video_inputs` are keyed by video id; `stored`: the last run's texts
    (render_memo.RenderMemo, whose scope holds the template's sha256), or None. With
    `stored`, `digests` (when given) receives each clip's render digests (question,
    answer), which row_reuse.py records."""
    answers = CaptionRenderer(template, block="answer", stored=stored)
    questions = CaptionRenderer(template, block="question", stored=stored)
    rows = []
    empty = 0
    for clip in clips:
        side = sides.get(clip["clip_id"])
        if side is None:
            continue
        vid = clip["video_id"]
        inputs = caption_inputs(
            videos[vid], video_inputs[vid], clip["label"], clip["event_offset"], taxonomy
        )
        # Clips of one video with the same event state share inputs: one render each.
        key = (vid, inputs["event"], inputs["event_offset"])
        question = questions.caption(key, inputs)
        answer = answers.caption(key, inputs)
        if digests is not None and stored is not None:
            digests[clip["clip_id"]] = [questions.digests[key], answers.digests[key]]
        if not answer:
            empty += 1
            continue
        rows.append(
            CaptionMetadataRow(
                id=row_id(CONFIG, clip["clip_id"]),
                clip_id=clip["clip_id"],
                video_id=vid,
                label=clip["label"],
                split=side,
                generator=GENERATOR,
                template=template.ref,
                content_hash=content_hash(question, answer, clip["path"]),
                video=clip["path"],
                question=question,
                answer=answer,
            )
        )
    return rows, empty
