"""The `cause_vqa` split: the dataset's own cause question for each event clip, no model.

In: clips (rows of `chunk/clips.parquet` as dicts), each clip's side, the videos by id
(their `metadata.cause`: question, options, the index of the right one, as MM-AU's Q&A
sheets give it) and `templates/cause_vqa.jinja`. Out: `McqRow`s, one per clip that holds
its video's event (an event label) when the video has a cause question; options in the
dataset's order. Clips without one are counted, not guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.answers import option_letters
from vlm_autodrive.builders.core.jinja_env import LoadedTemplate, load_template
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.dataset.rows import content_hash, row_id
from vlm_autodrive.builders.rules.captions import render_or_explain
from vlm_autodrive.builders.rules.mcq import McqRow

CONFIG = "cause_vqa"
GENERATOR = "rule:cause_vqa"
TEMPLATE = "cause_vqa.jinja"
INPUTS = ("question", "options", "answer")
BLOCKS = ("question", "answer")


def load_cause_template(folders: Sequence[str | Path]) -> LoadedTemplate:
    """Load and check templates/cause_vqa.jinja, with and without a question text."""
    opts = [{"letter": x, "text": f"cause {x}"} for x in option_letters(5)]
    samples = [
        {"question": q, "options": opts, "answer": opts[i]}
        for q, i in (("Why did it happen?", 0), (None, 4))
    ]
    return load_template(TEMPLATE, folders, INPUTS, samples=samples, blocks=BLOCKS)


def build_cause_vqa(
    clips: Iterable[Mapping[str, Any]],
    sides: Mapping[str, str],
    videos: Mapping[str, Mapping[str, Any]],
    taxonomy: Taxonomy,
    template: LoadedTemplate,
) -> tuple[list[McqRow], int]:
    """The rows, and how many event clips had no cause question in their video."""
    rows, without = [], 0
    for clip in clips:
        side = sides.get(clip["clip_id"])
        if side is None or not taxonomy.is_event(clip["label"]):
            continue
        cause = (videos[clip["video_id"]].get("metadata") or {}).get("cause")
        if not cause or not cause.get("options"):
            without += 1
            continue
        letters = option_letters(len(cause["options"]))
        opts = [{"letter": x, "text": t} for x, t in zip(letters, cause["options"])]
        ctx = {"question": cause.get("question"), "options": opts, "answer": opts[cause["answer"]]}
        what = f"clip {clip['clip_id']}"
        question = render_or_explain(template, ctx, what, "question")
        answer = render_or_explain(template, ctx, what, "answer")
        letter = letters[cause["answer"]]
        rows.append(
            McqRow(
                id=row_id(CONFIG, clip["clip_id"]),
                clip_id=clip["clip_id"],
                video_id=clip["video_id"],
                label=clip["label"],
                split=side,
                generator=GENERATOR,
                template=template.ref,
                content_hash=content_hash(
                    question, list(cause["options"]), letter, answer, clip["path"]
                ),
                video=clip["path"],
                question=question,
                options=list(cause["options"]),
                answer_letter=letter,
                answer=answer,
            )
        )
    return rows, without
