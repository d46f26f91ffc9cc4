"""The `cause_vqa` rule split: the dataset's own cause question (MM-AU's Q&A layout: a
question, five options, the index of the right one) for each event clip, options in the
dataset's order; clips without one counted, Normal Driving clips never asked."""

from __future__ import annotations

from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.records import CauseQuestion
from vlm_autodrive.builders.rules.cause_vqa import build_cause_vqa, load_cause_template
from vlm_autodrive.resources import bundled

TAX = load_taxonomy()
OPTS = ["Pedestrian runs the red light", "The car is out of control", "c", "d", "e"]


def clip(cid, vid, label):
    return {"clip_id": cid, "video_id": vid, "label": label, "path": f"clips/{vid}/{cid}.mp4"}


def test_rows_from_mmau_style_cause_questions():
    template = load_cause_template([bundled("templates")])
    q = CauseQuestion(question="What is the cause of the accident?", options=OPTS, answer=1)
    videos = {
        "cap_1": {"metadata": {"cause": q.model_dump()}},
        "cap_2": {"metadata": {"cause": {"question": None, "options": OPTS, "answer": 4}}},
        "cap_3": {"metadata": {"cause": None}},
    }
    clips = [
        clip("cap_1_0000", "cap_1", "Normal Driving"),  # a scene clip of the video: no question
        clip("cap_1_5500", "cap_1", "Collision"),
        clip("cap_2_0000", "cap_2", "Near-Collision"),
        clip("cap_3_0000", "cap_3", "Collision"),
        clip("cap_9_0000", "cap_1", "Collision"),
    ]
    sides = {c["clip_id"]: "train" for c in clips[:4]}  # the last one is held out
    rows, without = build_cause_vqa(clips, sides, videos, TAX, template)
    assert [r.clip_id for r in rows] == ["cap_1_5500", "cap_2_0000"] and without == 1
    first, second = rows
    assert first.question.splitlines()[0] == "What is the cause of the accident? Choose one option."
    assert first.question.splitlines()[1:6] == [f"{x}. {o}" for x, o in zip("ABCDE", OPTS)]
    assert (first.answer_letter, first.answer) == ("B", "B. The car is out of control")
    assert first.options == OPTS and first.generator == "rule:cause_vqa"
    assert second.question.startswith("What caused the event in this dashcam video?")
    assert second.answer == "E. e"
    again, _ = build_cause_vqa(clips, sides, videos, TAX, template)
    assert again == rows
