"""Degenerate model output is a `degenerate` failure with its reason, in every model
split: the demo's own degenerate rows (placeholder options and steps, "A, A, A, A",
JSON debris), repetition, duplicate / empty / bare options, an answer copied into its
question, too-short questions. Realistic good outputs still pass. Output with control
characters or invalid Unicode is a `parse` failure, kept raw."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.builders.generate.test_model_splits import (  # noqa: F401
    Recording,
    build,
    gen_config,
    rows,
    rule_build,
    run,
)
from tests.builders.generate.test_new_split_parsers import CLIP as FACT_CLIP
from tests.builders.generate.test_new_split_parsers import COMMON, FOLDERS, GOOD_QA
from tests.doubles.scripted import ScriptedBackend
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.generate.backends.base import Completion
from vlm_autodrive.builders.generate.degenerate import REASONS
from vlm_autodrive.builders.generate.parsing import Degenerate, ParseError
from vlm_autodrive.builders.generate.report import format_reports
from vlm_autodrive.builders.generate.tasks import MODEL_SPLITS
from vlm_autodrive.builders.generate.tasks.caption_augmented import SPLIT as AUGMENTED
from vlm_autodrive.builders.generate.tasks.caption_vlm import SPLIT as CAPTION_VLM
from vlm_autodrive.builders.generate.tasks.cause_reasoning import SPLIT as CAUSE
from vlm_autodrive.builders.generate.tasks.reasoning_mcq import SPLIT as REASONING_MCQ
from vlm_autodrive.builders.generate.tasks.reasoning_revised import SPLIT as REVISED
from vlm_autodrive.builders.generate.tasks.reasoning_vqa import SPLIT as REASONING_VQA
from vlm_autodrive.builders.generate.tasks.short_qa import SPLIT as SHORT_QA
from vlm_autodrive.builders.generate.tasks.vqa import SPLIT as VQA

TAX = load_taxonomy()
for _split in MODEL_SPLITS.values():
    _split.prepare(FOLDERS, TAX)
CLIP = replace(FACT_CLIP, vlm_caption="A truck cuts in front of the ego car on a highway.")


def parse(split, text, reasoning=None, finish="stop", clip=CLIP):
    """What the stage calls: the split's parser behind the output-text checks."""
    comp = Completion(text, reasoning, finish, 10)
    return split.checked_parse(comp, clip, 0, dict(COMMON), TAX)


GOOD_RVQA = {
    "question": "Why does the ego driver brake hard about 2.5 seconds into the clip?",
    "options": [
        "A pedestrian steps onto the road",
        "The truck changes lanes into the ego's path",
        "The traffic light turns red",
        "The road surface is icy",
    ],
    "answer": "B",
    "reasons": [
        "The truck ahead starts changing lanes while the ego goes straight.",
        "The gap closes faster than the ego can stop, so it brakes hard.",
        "No pedestrian, traffic light or ice is visible in the clip.",
    ],
}


def rvqa(**change):
    return json.dumps({**GOOD_RVQA, **change})


GOOD_VQA_ITEMS = [
    {
        "dimension": "event_type",
        "question": "What kind of driving event does the clip show?",
        "options": ["Collision", "Near-Collision", "Normal Driving"],
        "answer": "A",
    },
    {
        "dimension": "weather",
        "question": "What is the weather like?",
        "options": ["clear", "overcast", "snowing"],
        "answer": "B",
    },
    {
        "dimension": "lighting",
        "question": "When does this happen?",
        "options": ["in daylight", "at dusk", "at night"],
        "answer": "C",
    },
    {
        "dimension": "other_actor",
        "question": "Which road user does the ego vehicle hit?",
        "options": ["a bus", "a truck", "a cyclist", "a parked car"],
        "answer": "B",
    },
    {
        "dimension": "evasive_action",
        "question": "What does the ego driver do?",
        "options": ["brakes hard", "speeds up", "swerves right"],
        "answer": "A",
    },
]


def vqa(k: int = 1, **change):
    items = [dict(i) for i in GOOD_VQA_ITEMS]
    items[k].update(change)
    return json.dumps({"questions": items})


GOOD_TRACE = (
    "<think>\nThe clip shows the ego vehicle going straight on a highway at night and a "
    "truck changes lanes in front of it. About 2.5 seconds in, the two vehicles touch: the "
    "front of the ego and the left side of the truck. Contact means a collision, not a "
    "near miss.\n</think>\n\n<answer>\nB\n</answer>"
)


def test_realistic_good_outputs_pass_every_split():
    assert len(parse(REASONING_VQA, rvqa())) == 1
    assert len(parse(VQA, vqa())) == 5
    assert len(parse(REASONING_MCQ, GOOD_TRACE)) == 1
    assert len(parse(REVISED, GOOD_TRACE)) == 1
    cause = GOOD_TRACE.replace("<answer>\nB", "<answer>\nD")
    assert len(parse(CAUSE, cause)) == 1
    assert len(parse(SHORT_QA, json.dumps({"pairs": [dict(zip(("dimension", "question",
               "answer"), p)) for p in GOOD_QA]}))) == 4  # fmt: skip
    assert parse(CAPTION_VLM, "A truck cuts in front of the ego car at night.")[0].answer
    paraphrase = (
        "At night on a highway under an overcast sky, the ego vehicle is going straight "
        "while a truck is changing lanes. Roughly 2.5 seconds in, the ego vehicle collides "
        "with the truck; the impact is on the front of the ego vehicle and the left side of "
        "the truck. The ego driver brakes hard, and the truck is at fault."
    )
    assert len(parse(AUGMENTED, paraphrase)) == 1
    # Numbers, units, tabs and Windows line ends are fine; a server's \r\n too.
    ok = rvqa(options=["10 km/h", "30 km/h", "50 km/h", "70 km/h"], question="How fast\tis "
              "the truck going\r\nwhen it changes lanes?")  # fmt: skip
    assert len(parse(REASONING_VQA, ok)) == 1


DEMO_DEGENERATE = [
    # the demo's reasoning_vqa rows, as the 135M model wrote them
    (
        rvqa(options=["step 1", "step 2", "step 3", "step 4"], reasons=["step 1", "step 2"]),
        "placeholder option: option 1 is 'step 1'",
    ),
    (rvqa(reasons=["step 1", "step 2"]), "placeholder reason: reason 1 is 'step 1'"),
    (rvqa(question="A, A, A, A, A, A, A, A, A, ..."), "repetition: the question says 'a' 9"),
    (
        rvqa(options=["]}", "answer:", "The truck cuts in", "It rains"]),
        "placeholder option: option 1 is ']}'",
    ),
    (rvqa(options=["The truck cuts in", "answer:", "]}", "x y"]), "option 2 is 'answer:'"),
    (rvqa(reasons=["]{", "answer1': ..."]), "placeholder reason: reason 1 is ']{'"),
    (rvqa(reasons=["The truck cuts in.", "answer1': ..."]), 'reason 2 is "answer1\': ..."'),
    # the other kinds
    (rvqa(options=["The truck", "the truck.", "A bus", "A car"]), "duplicate options"),
    (rvqa(options=["The truck", " ", "A bus", "A car"]), "empty option: option 2"),
    (rvqa(options=["A", "B", "C", "D"]), "bare letter/number option: option 1 is 'A'"),
    (rvqa(options=["1", "2", "3", "4"]), "bare letter/number option"),
    (rvqa(options=["(a)", "b)", "c.", "d"]), "bare letter/number option"),
    (rvqa(options=["option A", "option B", "option C", "option D"]), "placeholder option"),
    (rvqa(question="Why?"), "question too short: 'Why?'"),
    (rvqa(question="  "), "empty question"),
    (rvqa(question="Question 1?"), "placeholder question"),
    (
        rvqa(question="Does the truck changes lanes into the ego's path cause the braking?"),
        "answer copied into question: the question names the answer",
    ),
    (
        rvqa(reasons=["The truck cuts in and the gap closes fast."] * 3),
        "repetition: the reasoning repeats the line",
    ),
    (
        rvqa(reasons=["The truck brakes and the truck brakes and the truck brakes and stops."]),
        "repetition: the reasoning says 'the truck brakes and' 3 times",
    ),
]


@pytest.mark.parametrize(("text", "reason"), DEMO_DEGENERATE)
def test_degenerate_reasoning_vqa_is_a_degenerate_failure_with_its_reason(text, reason):
    with pytest.raises(Degenerate, match=reason.replace("(", r"\(").replace("?", r"\?")) as e:
        parse(REASONING_VQA, text)
    assert e.value.kind == "degenerate" and e.value.reason in REASONS
    assert str(e.value).startswith(e.value.reason + ": ")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"options": ["step 1", "step 2", "step 3"]}, "placeholder option.*question 2"),
        ({"options": ["clear", "overcast", "overcast"]}, "duplicate options"),
        ({"question": "Weather?"}, "question too short"),
        ({"question": "Is it overcast today?"}, "answer copied into question.*'overcast'"),
        ({"question": "What, what, what, what is the weather?"}, "repetition"),
    ],
)
def test_degenerate_vqa_items(change, reason):
    with pytest.raises(Degenerate, match=reason):
        parse(VQA, vqa(**change))


def test_a_question_naming_every_option_is_no_copy():
    q = "Is it clear, overcast or snowing?"
    assert len(parse(VQA, vqa(question=q))) == 5


@pytest.mark.parametrize(
    ("pair", "reason"),
    [
        (("weather", "What is the weather like?", "answer:"), "placeholder"),
        (("weather", "What is the overcast weather like?", "Overcast weather."), "copied"),
        (("weather", "Weather?", "Overcast."), "question too short"),
        (
            ("weather", "What is the weather like?", "overcast, overcast, overcast, overcast"),
            "repetition",
        ),
    ],
)
def test_degenerate_short_qa(pair, reason):
    pairs = [pair, *[p for p in GOOD_QA if p[0] != pair[0]]][:4]
    text = json.dumps({"pairs": [dict(zip(("dimension", "question", "answer"), p)) for p in pairs]})
    with pytest.raises(Degenerate, match=reason):
        parse(SHORT_QA, text)


@pytest.mark.parametrize("split", [REASONING_MCQ, REVISED])
@pytest.mark.parametrize(
    ("trace", "reason"),
    [
        ("1. step 1\n2. step 2", "no content: the reasoning '1. step 1\\\\n2. step 2'"),
        ("1. ]{ 2. answer1': ...", "no content"),
        ("The truck cuts in. " * 6, "repetition"),
        ("\n".join(f"{i}. The truck cuts in front of us." for i in range(1, 5)), "the line"),
    ],
)
def test_degenerate_reasoning_traces(split, trace, reason):
    with pytest.raises(Degenerate, match=reason):
        parse(split, f"<think>\n{trace}\n</think>\n\n<answer>\nB\n</answer>")


def test_degenerate_captions():
    with pytest.raises(Degenerate, match="repetition"):
        parse(CAPTION_VLM, "the car the car the car the car the car")
    with pytest.raises(Degenerate, match="no content"):
        parse(CAPTION_VLM, "1. ]{ 2.")
    with pytest.raises(Degenerate, match=r"loops: .* distinct"):
        parse(
            CAPTION_VLM, " ".join(f"A truck cuts in and the ego brakes at {i}." for i in range(12))
        )


@pytest.mark.parametrize(
    ("split", "text", "reasoning", "reason"),
    [
        (
            CAPTION_VLM,
            "A truck \x1b[2J\x1b[Hcuts in.",
            None,
            r"control character '\\x1b' at char 8",
        ),
        (CAPTION_VLM, "A truck cuts in.\x07", None, r"'\\x07'"),
        (CAPTION_VLM, "A truck\rThe road is clear.", None, r"'\\r' at char 7"),
        (CAPTION_VLM, "A truck \x9b31m cuts in.", None, r"'\\x9b'"),
        (CAPTION_VLM, "A truck cuts \ud800in.", None, "lone surrogate"),
        (CAPTION_VLM, "A truck cuts \ufffd\ufffd\ufffd in.", None, "3 U\\+FFFD"),
        (REASONING_MCQ, "<answer>B</answer>", "It brakes \x1b[31m hard.", "of the reasoning"),
        # JSON may spell the character as an escape: the parsed row is checked too
        (
            REASONING_VQA,
            rvqa(question="Why does the ego \x1b[2J brake hard?"),
            None,
            r"'\\x1b' .* JSON `question`",
        ),
        (REASONING_VQA, rvqa(reasons=["It brakes \ud83d hard."]), None, "lone surrogate"),
    ],
)
def test_control_characters_and_invalid_unicode_are_parse_failures(split, text, reasoning, reason):
    with pytest.raises(ParseError, match=reason) as e:
        parse(split, text, reasoning)
    assert e.value.kind == "parse"


class DemoDegenerate(ScriptedBackend):
    """The scripted model, but reasoning_vqa answers with the demo's placeholder row and
    every reasoning trace carries a terminal escape (clear the screen)."""

    def _answer(self, req):
        text = super()._answer(req)
        if text.startswith('{"question"'):
            return rvqa(options=["step 1", "step 2", "step 3", "step 4"],
                        reasons=["step 1", "step 2"])  # fmt: skip
        return text.replace("<think>\n", "<think>\n\x1b[2J", 1)


def test_the_stage_keeps_degenerate_outputs_raw_as_their_own_failure_kind(build):  # noqa: F811
    reports = run(build, DemoDegenerate())
    r = reports["reasoning_vqa"]
    assert r.kept == 0 and r.failed == {"degenerate": r.samples} and r.samples > 0
    assert reports["vqa"].failed == {} and reports["vqa"].kept == reports["vqa"].samples
    m = reports["reasoning_mcq"]
    assert m.kept == 0 and m.failed == {"parse": m.samples}
    table = format_reports(reports.values())
    assert f"degenerate {r.samples}" in table.splitlines()[3]  # the reasoning_vqa line
    fails = [f for f in rows(build, "failures") if f["config"] == "reasoning_vqa"]
    assert len(fails) == r.samples and all(f["kind"] == "degenerate" for f in fails)
    assert fails[0]["reason"] == "placeholder option: option 1 is 'step 1'"
    assert json.loads(fails[0]["raw_output"])["options"][0] == "step 1"  # kept raw
    escaped = [f for f in rows(build, "failures") if f["config"] == "reasoning_mcq"]
    assert escaped[0]["reason"] == "control character '\\x1b' at char 8 of the output"
    assert "\x1b[2J" in escaped[0]["raw_output"]
    # --retry-failed sends them again (a fresh sample may be fine)
    retry = ScriptedBackend()
    again = run(build, retry, retry_failed=True)
    assert again["reasoning_vqa"].failed == {} and "parse" not in again["reasoning_mcq"].failed
    assert len(retry.sent) == r.sent + m.sent


class LoopingCaptions(Recording):
    """The scripted model, but its captions loop."""

    def _answer(self, req):
        text = super()._answer(req)
        return "the car the car the car the car" if text.startswith("A car drives") else text


@pytest.mark.parametrize("backend", [Recording, LoopingCaptions])
def test_a_kept_caption_reaches_the_reasoning_prompts_and_a_degenerate_one_does_not(
    build,  # noqa: F811
    backend,
):
    model = backend()
    reports = run(build, model, gen=gen_config(caption_vlm={}))
    prompts = [
        m["content"] if isinstance(m["content"], str) else m["content"][-1]["text"]
        for req in model.requests
        for m in req.messages
        if m["role"] == "user" and req.constraint and "regex" in req.constraint
    ]
    c = reports["caption_vlm"]
    assert prompts and c.samples == c.clips > 0
    if backend is Recording:
        assert c.kept == c.samples
        assert all(
            "impression of the same clip: A car drives along a wet road." in p for p in prompts
        )
    else:
        assert c.failed == {"degenerate": c.samples} and c.kept == 0
        assert not any("impression of the same clip" in p for p in prompts)
