"""The model-split parsers on hand-written outputs: good, noisy, empty, truncated, wrong."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace

import pytest

from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.generate.backends.base import Completion
from vlm_autodrive.builders.generate.parsing import ParseError, extract_answer_letter, extract_json
from vlm_autodrive.builders.generate.tasks.base import ClipInput, Filtered
from vlm_autodrive.builders.generate.tasks.caption_vlm import SPLIT as CAPTION_VLM
from vlm_autodrive.builders.generate.tasks.reasoning_mcq import SPLIT as REASONING_MCQ
from vlm_autodrive.builders.generate.tasks.reasoning_vqa import SPLIT as REASONING_VQA
from vlm_autodrive.builders.generate.tasks.vqa import SPLIT as VQA
from vlm_autodrive.resources import bundled

TAX = load_taxonomy()
for _split in (VQA, REASONING_MCQ, REASONING_VQA):
    _split.prepare([bundled("prompts")], TAX)
CLIP = ClipInput(
    clip_id="v1_0005500",
    video_id="v1",
    label="Near-Collision",
    split="train",
    video="clips/v1/v1_0005500.mp4",
    video_path="/b/clips/v1/v1_0005500.mp4",
    caption="Rain, night. A truck cuts in; the ego brakes hard.",
    vlm_caption=None,
    mcq_question="What kind of driving event...\nA. Collision...\nB. Near-Collision...\nC. ...",
    mcq_options=("Collision", "Near-Collision", "Normal Driving"),
    mcq_answer_letter="B",
)
COMMON = {
    "clip_id": CLIP.clip_id,
    "video_id": "v1",
    "label": CLIP.label,
    "split": "train",
    "video": CLIP.video,
    "generator": "m@1",
    "template": "t@1",
}


def parse(split, text, finish="stop", reasoning=None, clip=CLIP):
    return split.parse(Completion(text, reasoning, finish, 10), clip, 0, dict(COMMON), TAX)


def vqa_json(**change):
    qs = [
        {
            "dimension": "event_type",
            "question": "What happens?",
            "options": ["Collision", "Near-Collision", "Normal Driving"],
            "answer": "B",
        },
        {
            "dimension": "weather",
            "question": "What is the weather?",
            "options": ["clear", "rain", "snow"],
            "answer": "B",
        },
        {
            "dimension": "lighting",
            "question": "When is it?",
            "options": ["day", "dusk", "night"],
            "answer": "C",
        },
        {
            "dimension": "other_actor",
            "question": "Who cuts in?",
            "options": ["a bus", "a truck", "a cyclist", "a car"],
            "answer": "B",
        },
        {
            "dimension": "evasive_action",
            "question": "What does the ego do?",
            "options": ["brakes", "speeds up", "turns"],
            "answer": "A",
        },
    ]
    for k, v in change.items():
        i, field = k.split("__")
        qs[int(i[1:])][field] = v
    return json.dumps({"questions": qs})


def test_vqa_good_output_in_a_code_fence_with_chatter():
    rows = parse(VQA, "Sure! Here you go:\n```json\n" + vqa_json() + "\n```\nHope it helps.")
    assert [r.dimension for r in rows][:2] == ["event_type", "weather"]
    # each row shows its options in an order seeded by its id; the answer follows them
    assert rows[0].answer.endswith(". Near-Collision") and rows[3].answer.endswith(". a truck")
    for r in rows:
        assert f"\n{r.answer}\n" in r.question and r.answer.startswith(r.answer_letter + ". ")
    assert rows[1].question.endswith("Answer with the letter of the correct option.")
    assert len({r.id for r in rows}) == 5


def test_vqa_answer_letters_are_balanced_whatever_order_the_model_wrote():
    """The model writes every answer as A (and the event question's options come in the
    classes' order): the rows' letters are spread over the options, the same for the
    same row, and a question whose options refer to each other keeps its order."""
    letters = Counter()
    for k in range(60):
        rows = parse(VQA, vqa_json(), clip=replace(CLIP, clip_id=f"c{k:03d}"))
        letters.update(r.answer_letter for r in rows)
        again = parse(VQA, vqa_json(), clip=replace(CLIP, clip_id=f"c{k:03d}"))
        assert [r.question for r in again] == [r.question for r in rows]
    assert set(letters) >= {"A", "B", "C"} and max(letters.values()) < 0.45 * sum(letters.values())
    above = ["rain", "fog", "all of the above"]
    (kept,) = [r for r in parse(VQA, vqa_json(q1__options=above)) if r.dimension == "weather"]
    assert kept.options == above


@pytest.mark.parametrize(
    ("text", "finish", "reason"),
    [
        ("", "stop", "empty output"),
        ("I cannot help with that.", "stop", "no JSON object"),
        ('{"questions": [{"dimension": "weather", "quest', "length", "cut off at max_tokens"),
        ('{"questions": [1, 2,]}', "stop", "invalid JSON"),
        ('{"items": []}', "stop", "no `questions` list"),
        (vqa_json(q1__answer="D"), "stop", "not within the options"),
        (vqa_json(q2__dimension="weather"), "stop", "dimension 'weather' repeats"),
        (vqa_json(q0__answer="A"), "stop", "the clip is 'Near-Collision'"),
        (vqa_json(q0__dimension="scene"), "stop", "no event_type question"),
        (vqa_json(q1__options=["clear", "rain"]), "stop", "2 options (need 3-4)"),
        (vqa_json(q1__options=["clear", "Clear", "rain"]), "stop", "duplicate options: 'clear'"),
    ],
)
def test_vqa_bad_outputs_fail_with_their_reason(text, finish, reason):
    with pytest.raises(ParseError, match=re.escape(reason)):
        parse(VQA, text, finish)


def test_reasoning_mcq_keeps_the_ground_truth_and_filters_the_rest():
    think = "<think>\nThe truck cuts in; the ego brakes and no contact.\n</think>"
    (row,) = parse(REASONING_MCQ, think + "\n\n<answer>\nB\n</answer>")
    assert row.target == think + "\n\n<answer>\nB\n</answer>"
    assert row.answer == "B. Near-Collision"
    # R1 distills often drop the opening <think>; servers may split the reasoning off
    (row,) = parse(REASONING_MCQ, "It brakes hard.\n</think>\n<answer>B</answer>")
    assert row.reasoning == "It brakes hard."
    (row,) = parse(REASONING_MCQ, "<answer> B </answer>", reasoning="Close pass, no contact.")
    assert row.reasoning == "Close pass, no contact."
    with pytest.raises(Filtered, match="answered A, the ground truth is B"):
        parse(REASONING_MCQ, "<think>\nThey crash.\n</think>\n\n<answer>\nA\n</answer>")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty output"),
        ("<think>\nThe truck cuts in and the ego bra", "no <answer>"),
        ("<think>x</think><answer>B</answer><answer>A</answer>", "answer blocks disagree"),
        ("<think>x</think><answer>D</answer>", "D is not one of ABC"),
        ("<answer>B</answer>", "no reasoning"),
        ("<think>\n\n</think>\n<answer>B</answer>", "no reasoning"),
    ],
)
def test_reasoning_mcq_bad_outputs(text, reason):
    with pytest.raises(ParseError, match=reason):
        parse(REASONING_MCQ, text)


def test_reasoning_vqa_good_and_bad():
    obj = {
        "question": "Why did the ego brake?",
        "options": ["a red light", "a pedestrian", "the truck cut in", "a pothole"],
        "answer": "c",
        "reasons": ["The truck moved over.", "The gap closed."],
    }
    (row,) = parse(REASONING_VQA, json.dumps(obj))
    assert (
        row.answer_letter == "C" and row.reasoning == "1. The truck moved over.\n2. The gap closed."
    )
    assert row.target.endswith("</think>\n\n<answer>\nC\n</answer>")
    for change, reason in [
        ({"options": ["a", "b", "c"]}, "exactly four"),
        ({"answer": "E"}, "not a letter A-D"),
        ({"reasons": []}, "no reasons"),
        ({"question": " "}, "empty question"),
        ({"options": ["a bus", "a bus", "a car", "a van"]}, "duplicate options"),
    ]:
        with pytest.raises(ParseError, match=reason):
            parse(REASONING_VQA, json.dumps({**obj, **change}))
    with pytest.raises(ParseError, match="truncated"):
        parse(REASONING_VQA, json.dumps(obj)[:40], "length")


def test_caption_vlm():
    (row,) = parse(CAPTION_VLM, "  A truck cuts in front\n of the ego at night.  ")
    assert row.answer == "A truck cuts in front of the ego at night."
    with pytest.raises(ParseError, match="empty"):
        parse(CAPTION_VLM, "   ")
    with pytest.raises(ParseError, match="cut off"):
        parse(CAPTION_VLM, "A truck cuts in front of", "length")


def test_low_level_helpers():
    assert extract_json('noise {"a": {"b": 1}} noise') == {"a": {"b": 1}}
    with pytest.raises(ParseError, match="no JSON object"):
        extract_json("[1, 2]")
    assert extract_answer_letter("<ANSWER>(c)</ANSWER>", "ABC") == "C"


def test_no_regex_caps_the_reasoning():
    from vlm_autodrive.builders.generate.tasks.reasoning_mcq import answer_regex

    moves = ["closing", "braking", "drifting", "slowing"]
    long = " ".join(  # ~5,000 characters that do not loop
        f"At {i / 10:.1f} s the truck is {40 - i * 0.3:.1f} m ahead and {moves[i % 4]}."
        for i in range(100)
    )
    text = f"<think>\n{long}\n</think>\n\n<answer>\nB\n</answer>"
    assert re.fullmatch(answer_regex("ABC", with_think=True), text)
    assert re.fullmatch(answer_regex("ABC", with_think=False), "<answer>\nB\n</answer>")
    (row,) = parse(REASONING_MCQ, text)
    assert len(row.reasoning) > 4000


XGRAMMAR_CHECK = """
import json, sys
import xgrammar
from xgrammar.testing import _is_grammar_accept_string
schema, texts = json.loads(sys.argv[1]), json.loads(sys.argv[2])
grammar = xgrammar.Grammar.from_json_schema(json.dumps(schema))
print(json.dumps([_is_grammar_accept_string(grammar, t) for t in texts]))
"""


def test_vqa_constraint_fixes_the_event_question_to_the_classes_and_the_label():
    """The clip's schema, compiled by the grammar engine vLLM uses (xgrammar, in
    .venv-vllm): an output whose event question has the classes and the label passes,
    one with other options or another answer cannot be generated."""
    import subprocess

    from tests.conftest import REPO

    schema = VQA.constraint(CLIP, False, TAX)["json"]
    good = json.loads(vqa_json())
    assert good["questions"][0]["dimension"] == "event_type"
    wrong_answer = json.loads(vqa_json())
    wrong_answer["questions"][0]["answer"] = "A"
    wrong_options = json.loads(vqa_json())
    wrong_options["questions"][0]["options"] = ["Crash", "Close call", "Calm"]
    texts = [json.dumps(o, separators=(",", ":")) for o in (good, wrong_answer, wrong_options)]
    python = REPO / ".venv-vllm" / "bin" / "python"
    if not python.exists():
        pytest.skip("no .venv-vllm (make .venv-vllm/.installed)")
    out = subprocess.run(
        [str(python), "-c", XGRAMMAR_CHECK, json.dumps(schema), json.dumps(texts)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [True, False, False]
    assert len(parse(VQA, texts[0])) == len(good["questions"])
