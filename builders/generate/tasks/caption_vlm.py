"""The `caption_vlm` split: a short caption per clip from a video VLM, or imported.

In: the clip's video (attached to the user turn as a `video_url` part). Out: one
`CaptionVlmRow` per sample: the instruction as `question`, the caption as `answer`.
Captions made elsewhere (e.g. by Gemini) can be imported from a JSONL file instead
(`generate.configs.caption_vlm.import_file`), with no model call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.dataset.rows import COMMON_FIELDS, SplitRow, content_hash, row_id
from vlm_autodrive.builders.generate.degenerate import check_content
from vlm_autodrive.builders.generate.parsing import require
from vlm_autodrive.builders.generate.tasks.base import ClipInput, ModelSplit

QUESTION = "Describe this dashcam video briefly."


@dataclass(slots=True)
class CaptionVlmRow(SplitRow):
    sample: int
    question: str
    answer: str


CAPTION_VLM_SCHEMA = pa.schema(
    [*COMMON_FIELDS, ("sample", pa.int32()), ("question", pa.string()), ("answer", pa.string())]
)


class CaptionVlm(ModelSplit):
    name = "caption_vlm"
    prompt = "caption_vlm.jinja"
    inputs = ()
    row_type = CaptionVlmRow
    schema = CAPTION_VLM_SCHEMA
    description = "A short caption of each clip written by a video VLM from its frames."
    needs_video = True

    def context(self, clip: ClipInput, taxonomy: Taxonomy) -> dict[str, Any] | None:
        return {}

    def sample_contexts(self, taxonomy: Taxonomy) -> list[dict[str, Any]]:
        return [{}]

    def parse(self, completion, clip, sample, common, taxonomy) -> list[SplitRow]:
        text = " ".join(completion.text.split())
        require(text != "", "empty output")
        require(completion.finish_reason != "length", "cut off at max_tokens")
        check_content(text, "caption")
        return [
            CaptionVlmRow(
                id=row_id(self.name, clip.clip_id, sample),
                content_hash=content_hash(QUESTION, text, clip.video),
                sample=sample,
                question=QUESTION,
                answer=text,
                **common,
            )
        ]


SPLIT = CaptionVlm()
