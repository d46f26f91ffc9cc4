"""The metadata checks that keep wrong rows out of the model-made configs: a short answer
checked against the road user its question names (not any road user's value), every
vqa answer checked against the clip's metadata, and reasoning traces that cite the text
they were written from ("the description") filtered in every reasoning config."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.builders.generate.test_new_split_parsers import CLIP, COMMON, FOLDERS, qa, trace
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.generate.backends.base import Completion
from vlm_autodrive.builders.generate.facts import clip_facts, load_lexicon
from vlm_autodrive.builders.generate.failures import FailureRow
from vlm_autodrive.builders.generate.tasks.base import Filtered
from vlm_autodrive.builders.generate.tasks.cause_reasoning import SPLIT as CAUSE
from vlm_autodrive.builders.generate.tasks.reasoning_mcq import SPLIT as REASONING_MCQ
from vlm_autodrive.builders.generate.tasks.reasoning_revised import SPLIT as REVISED
from vlm_autodrive.builders.generate.tasks.reasoning_vqa import SPLIT as REASONING_VQA
from vlm_autodrive.builders.generate.tasks.short_qa import SPLIT as SHORT_QA
from vlm_autodrive.builders.generate.tasks.vqa import SPLIT as VQA

TAX = load_taxonomy()
for _split in (SHORT_QA, VQA, REASONING_MCQ, REASONING_VQA, CAUSE, REVISED):
    _split.prepare(FOLDERS, TAX)
# The QA's clip: the ego goes straight and is hit on the front; the bus turns right and
# is hit on its right side.
VIDEO = {
    "weather": "clear",
    "light": "daylight",
    "road": "intersection",
    "scene": "urban",
    "blame": "other",
    "evasive_action": "braking",
    "ego": {"role": "ego", "type": "car", "motion": "going straight", "impact_side": "front"},
    "others": [{"role": "other", "type": "bus", "motion": "turning right", "impact_side": "right"}],
}
BUS = replace(CLIP, facts=clip_facts(VIDEO, "Collision", True, TAX))
NORMAL = replace(
    CLIP, label="Normal Driving", facts=clip_facts(VIDEO, "Normal Driving", False, TAX)
)


def parse(split, text, clip=BUS, reasoning=None):
    common = {**COMMON, "label": clip.label}
    return split.parse(Completion(text, reasoning, "stop", 10), clip, 0, common, TAX)


def test_clip_facts_keep_each_road_users_motion_and_impact_side_apart():
    facts = BUS.facts
    assert facts["motion"] == ("going straight", "turning right")  # any road user's
    assert facts["ego.motion"] == ("going straight",) and facts["ego.impact_side"] == ("front",)
    assert facts["other.motion"] == ("turning right",)
    assert facts["other.impact_side"] == ("right",)
    assert "ego.impact_side" not in NORMAL.facts  # no event in a Normal Driving clip


# ---- D4: short_qa checks an answer against the road user its question names ---------

BUS_QA = [
    ("weather", "What is the weather like?", "It is clear and sunny."),
    ("event_type", "What happens?", "The ego vehicle collides with a bus."),
    ("actor_type", "Who collides with the ego vehicle?", "A bus."),
]


@pytest.mark.parametrize(
    "pair",
    [
        ("motion", "How is the ego vehicle moving?", "It is going straight."),
        ("motion", "How is the bus moving?", "It is turning right."),
        ("impact_side", "Which part of the ego vehicle is hit?", "The front."),
        ("impact_side", "Where is the other vehicle hit?", "On its right side."),
        # A sentence's "ego" names no fault (bare answer words are for vqa options).
        ("blame", "Who is at fault?", "The bus is at fault for hitting the ego vehicle."),
        # Neither road user named: any road user's value passes (the subject can't be told).
        ("motion", "How does a road user move here?", "Turning right."),
    ],
)
def test_short_answers_about_the_right_road_user_are_kept(pair):
    noisy = "Here they are:\n```json\n" + qa(*BUS_QA, pair) + "\n```"
    assert [r.answer for r in parse(SHORT_QA, noisy)][-1] == pair[2]


@pytest.mark.parametrize(
    "pair, reason",
    [
        (
            ("motion", "How is the ego vehicle moving?", "It is turning right."),
            r"motion: 'turning right'.*the metadata of the ego vehicle: motion going straight",
        ),
        (
            ("impact_side", "Which part of the ego vehicle is hit?", "The right side."),
            r"impact_side: 'right'.*ego vehicle: impact_side front",
        ),
        (
            ("motion", "How is the bus moving?", "It goes straight ahead."),
            r"motion: 'going straight'.*other road users: motion turning right",
        ),
        (
            ("impact_side", "Where is the ego car hit?", "Rear."),
            "does not name the metadata's value of the ego vehicle front",
        ),
    ],
)
def test_a_short_answer_true_of_the_other_road_user_only_is_filtered(pair, reason):
    with pytest.raises(Filtered, match=reason):
        parse(SHORT_QA, qa(*BUS_QA, pair))


def test_a_road_user_without_the_asked_value_cannot_be_checked():
    no_ego_motion = {**VIDEO, "ego": {**VIDEO["ego"], "motion": None}}
    clip = replace(BUS, facts=clip_facts(no_ego_motion, "Collision", True, TAX))
    pair = ("motion", "How is the ego vehicle moving?", "It is turning right.")
    with pytest.raises(Filtered, match="no motion of the ego vehicle to check"):
        parse(SHORT_QA, qa(*BUS_QA, pair), clip)


def test_subjects_are_told_by_phrase_not_by_word():
    lex = SHORT_QA.lexicon
    assert lex.subject("Where is the ego car hit?") == "ego"  # "ego car", not "car"
    assert lex.subject("How does the pedestrian cross?") == "other"
    assert lex.subject("Which part of the ego vehicle does the bus hit?") is None
    assert lex.subject("Where is the impact?") is None
    assert lex.subject("How is the ego vehicle moving?", "The bus turns right.") is None


# ---- D3: every vqa answer is checked against the metadata ---------------------------


def vqa(*questions, label="Collision"):
    event = {
        "dimension": "event_type",
        "question": "What kind of event happens in the clip?",
        "options": ["Collision", "Near-Collision", "Normal Driving"],
        "answer": "ABC"[["Collision", "Near-Collision", "Normal Driving"].index(label)],
    }
    return json.dumps({"questions": [event, *questions]})


def item(dimension, question, options, answer):
    return {"dimension": dimension, "question": question, "options": options, "answer": answer}


WEATHER = item("weather", "What is the weather?", ["Heavy snow", "Clear", "Fog"], "B")
ROADS = ["A parking lot", "An intersection", "A highway"]
ROAD = item("road_type", "Where does it happen?", ROADS, "B")
SIDE = item("impact_side", "Which side of the ego vehicle is hit?", ["Front", "Rear", "Left"], "A")
BLAME = item("blame", "Who is at fault?", ["The ego driver", "The other driver", "Unclear"], "B")
MOVES = ["Going straight", "Turning right", "Reversing"]
EGO = item("ego_motion", "How does the ego vehicle move?", MOVES, "A")
GOOD = [WEATHER, ROAD, SIDE, BLAME, EGO]


def test_vqa_answers_that_agree_with_the_metadata_are_kept():
    rows = parse(VQA, "Sure:\n```json\n" + vqa(*GOOD) + "\n```\nDone.")
    # (the letters are the rows' own: options are shown in an order seeded by row id)
    assert [r.answer.split(". ", 1)[1] for r in rows] == [
        "Collision", "Clear", "An intersection", "Front", "The other driver", "Going straight",
    ]  # fmt: skip
    assert all(r.options[ord(r.answer_letter) - ord("A")] in r.answer for r in rows)
    normal = [WEATHER, ROAD, {**SIDE, "options": ["Front", "Rear", "No impact"], "answer": "C"}]
    assert len(parse(VQA, vqa(*normal, EGO, label="Normal Driving"), NORMAL)) == 5


@pytest.mark.parametrize(
    "change, reason",
    [
        (
            {0: {"answer": "A"}},
            r"question 2 \(weather\).*'Heavy snow'.*weather: 'snow'.*weather clear",
        ),
        ({1: {"answer": "A"}}, r"road: 'parking lot'.*road intersection"),
        ({2: {"answer": "B"}}, r"impact_side: 'rear'.*of the ego vehicle: impact_side front"),
        ({2: {"answer": "C"}}, r"impact_side: 'left'"),
        ({3: {"answer": "A"}}, r"blame: 'ego'.*blame other"),
        ({4: {"answer": "B"}}, r"ego_motion.*motion: 'turning right'.*motion going straight"),
    ],
)
def test_a_vqa_answer_the_metadata_contradicts_filters_the_output(change, reason):
    questions = [{**q, **change.get(k, {})} for k, q in enumerate(GOOD)]
    with pytest.raises(Filtered, match=reason):
        parse(VQA, vqa(*questions))


def test_a_normal_driving_clip_has_no_impact_side_and_no_one_at_fault():
    for q in (SIDE, BLAME):
        with pytest.raises(Filtered, match=r"\(no event\)"):
            parse(VQA, vqa(WEATHER, ROAD, q, EGO, label="Normal Driving"), NORMAL)


# ---- D7c: traces that cite the text they were written from --------------------------

LEAKY = [
    "As the description says, the bus turns right across the ego vehicle's path.",
    "According to the caption, the bus turns right; the front of the ego hits it.",
    "The provided information says the bus turns right and the two vehicles touch.",
    "The metadata lists a collision: the bus turns right into the ego vehicle.",
]
CLEAN = (
    "The bus turns right across the ego vehicle's path. The gap closes and the front of "
    "the ego touches the bus: contact, so a collision."
)


@pytest.mark.parametrize("body", LEAKY)
def test_a_trace_that_cites_its_text_is_filtered_in_every_reasoning_config(body):
    cause = trace(body, "D")
    for split, text in ((REASONING_MCQ, trace(body)), (CAUSE, cause), (REVISED, trace(body))):
        with pytest.raises(Filtered, match="cites the text it was written from"):
            parse(split, text)
    options = ["It reverses", "The bus turns right", "It is foggy", "A light is red"]
    rvqa = {"question": "Why does the ego vehicle hit?", "options": options, "answer": "B"}
    with pytest.raises(Filtered, match="cites the text"):
        parse(REASONING_VQA, json.dumps({**rvqa, "reasons": [body]}))


def test_a_clean_trace_is_kept_and_ordinary_words_are_not_leaks():
    assert len(parse(REASONING_MCQ, trace(CLEAN))) == 1
    noisy = "Let me think.\n" + trace("The captioned clip aside, " + CLEAN.lower())
    assert len(parse(CAUSE, noisy.replace("<answer>B", "<answer>D"))) == 1
    lex = REASONING_MCQ.lexicon
    assert lex.text_leak("the description") == "the description"
    assert lex.text_leak("A prescription, a caption-less scene, a descriptive text.") is None


def test_a_trace_filtered_for_its_text_is_not_sent_for_revision():
    """The reviser is told the answer was wrong; a right answer citing its text is not."""
    wrong = ("A", "answered A, the ground truth is B", "It is a near miss.")
    leaky = ("B", "the trace cites the text it was written from: 'the description'", LEAKY[0])
    failures = [
        FailureRow(f"f{i}", "k", "reasoning_mcq", CLIP.clip_id, "v1", "Collision", "train", i,
                   "filtered", why, trace(body, letter), None, 1, "m", "t", CLIP.video)
        for i, (letter, why, body) in enumerate([wrong, leaky])
    ]  # fmt: skip
    assert [c.revises for c in REVISED.expand([CLIP], failures)] == ["f0"]


def test_an_edited_text_leak_list_is_read_from_the_recipes_prompts_folder(tmp_path):
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "text_leaks.txt").write_text("# mine\nthe  hint text\n")
    lex = load_lexicon([tmp_path, *FOLDERS], TAX)
    assert lex.text_leaks == ("the hint text",)
    assert lex.text_leak("As THE hint\ntext shows") == "the hint text"


def test_the_stage_key_changes_when_a_phrase_list_is_edited(tmp_path):
    """The stamp keys every list the parsers read: an edited list re-parses."""
    from copy import copy

    from vlm_autodrive.builders.generate.stamp import word_lists

    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "text_leaks.txt").write_text("the hint text\n")
    edited = copy(REASONING_MCQ)
    edited.prepare([tmp_path, *FOLDERS], TAX)
    assert word_lists(edited) != word_lists(REASONING_MCQ)
    assert word_lists(REASONING_MCQ) == word_lists(CAUSE)
