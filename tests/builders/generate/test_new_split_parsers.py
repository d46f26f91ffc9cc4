"""Parsers and validators of the splits beyond the paper (reasoning_revised, its check,
short_qa, caption_augmented, cause_reasoning) on good, noisy, empty, truncated and
malformed outputs, and on their traps: a revised trace that names the answer as given,
a paraphrase that flips the impact side, a short answer that contradicts the metadata."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.generate.backends.base import Completion
from vlm_autodrive.builders.generate.facts import load_lexicon
from vlm_autodrive.builders.generate.failures import FailureRow
from vlm_autodrive.builders.generate.parsing import ParseError
from vlm_autodrive.builders.generate.tasks.base import ClipInput, Filtered
from vlm_autodrive.builders.generate.tasks.caption_augmented import SPLIT as AUGMENTED
from vlm_autodrive.builders.generate.tasks.cause_reasoning import SPLIT as CAUSE
from vlm_autodrive.builders.generate.tasks.reasoning_revised import CHECK
from vlm_autodrive.builders.generate.tasks.reasoning_revised import SPLIT as REVISED
from vlm_autodrive.builders.generate.tasks.short_qa import SPLIT as SHORT_QA
from vlm_autodrive.resources import bundled

TAX = load_taxonomy()
FOLDERS = [bundled("prompts")]
CAPTION = (
    "The ego vehicle is going straight on a highway at night under an overcast sky. "
    "A truck is changing lanes. About 2.5 seconds into the clip, the ego vehicle "
    "collides with the truck. The impact is on the front of the ego vehicle and the "
    "left side of the truck. The ego driver brakes hard. The truck is at fault."
)
FACTS = {
    "event_type": ("Collision",),
    "weather": ("cloudy",),
    "light": ("night",),
    "road": ("highway",),
    "actor_type": ("truck",),
    "motion": ("changing lanes", "going straight"),
    "impact_side": ("front", "left"),
    "blame": ("other",),
    "evasive_action": ("braking",),
}
CLIP = ClipInput(
    clip_id="v1_0005500",
    video_id="v1",
    label="Collision",
    split="train",
    video="clips/v1/v1_0005500.mp4",
    video_path="/b/clips/v1/v1_0005500.mp4",
    caption=CAPTION,
    vlm_caption=None,
    mcq_question="What kind of event?\nA. Near-Collision\nB. Collision\nC. Normal Driving",
    mcq_options=("Near-Collision", "Collision", "Normal Driving"),
    mcq_answer_letter="B",
    facts=FACTS,
    cause_question="What is the cause?\nA. a\nB. b\nC. c\nD. d\nE. e",
    cause_options=("a", "b", "c", "d", "e"),
    cause_answer_letter="D",
    revises="f0",
    failed_sample=1,
    failed_reasoning="The truck passes by.",
    failed_answer="<answer>A</answer>",
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
for split in (REVISED, SHORT_QA, AUGMENTED, CAUSE):  # the word and phrase lists their parsers read
    split.prepare(FOLDERS, TAX)


def parse(split, text, finish="stop", reasoning=None, clip=CLIP, sample=0):
    return split.parse(Completion(text, reasoning, finish, 10), clip, sample, dict(COMMON), TAX)


def trace(body: str, letter: str = "B") -> str:
    return f"<think>\n{body}\n</think>\n\n<answer>{letter}</answer>"


# ---- reasoning_revised -------------------------------------------------------------


def test_revised_trace_ending_in_the_ground_truth_is_kept_with_its_provenance():
    body = "The truck moves into my lane and its side meets my bumper: that is contact."
    (row,) = parse(REVISED, trace(body))
    assert row.revised is True and row.revises == "f0"
    assert row.answer_letter == "B" and row.answer == "B. Collision"
    assert row.target == f"<think>\n{body}\n</think>\n\n<answer>\nB\n</answer>"
    # one row per (failed sample, revision sample): two failures of a clip never collide
    other = parse(REVISED, trace(body), clip=replace(CLIP, failed_sample=0))[0]
    assert other.id != row.id


def test_revised_trace_split_by_the_server_and_noisy_answer_tags():
    (row,) = parse(REVISED, "<answer>\nB\n</answer>", reasoning="Contact with the truck.")
    assert row.reasoning == "Contact with the truck."


@pytest.mark.parametrize(
    "body",
    [
        "Since the ground truth is B, the truck must have hit us.",
        "The correct answer is given as Collision, so I reason towards it.",
        "Unlike the first reasoning, I see contact.",
        "As I was told, it is B.",
        # the demo's SmolLM2 copied the reviser's prompt back; the check then agreed
        "This answer is wrong; the right one is B. Collision.\n\nI chose B.",
    ],
)
def test_a_revised_trace_that_names_the_answer_as_given_is_filtered(body):
    with pytest.raises(Filtered, match="cites being told the answer"):
        parse(REVISED, trace(body))


def test_a_revision_that_still_ends_in_a_wrong_answer_is_filtered():
    with pytest.raises(Filtered, match="answered A, the ground truth is B"):
        parse(REVISED, trace("No contact happens.", "A"))


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "no <answer>|empty"),
        ("<think>\nThe truck cuts in and", "no <answer>"),  # truncated
        ("<answer>B</answer>", "no reasoning"),
        (trace("x", "A") + "<answer>C</answer>", "answer"),  # conflicting answers
        ("{not even close", "answer"),
    ],
)
def test_revised_malformed_outputs_are_parse_failures(text, reason):
    with pytest.raises(ParseError, match=reason):
        parse(REVISED, text)


def test_revised_inputs_are_the_filtered_reasoning_mcq_failures_only():
    def failure(kind, config="reasoning_mcq", clip_id=CLIP.clip_id, sample=0):
        body = "No contact." if sample == 0 else "The truck passes."
        return FailureRow(
            f"{kind}{sample}", "k", config, clip_id, "v1", "Collision", "train", sample, kind,
            "r", trace(body, "A"), None, 1, "m", "t", CLIP.video,
        )  # fmt: skip

    earlier = [
        failure("filtered", sample=0),
        failure("filtered", sample=1),
        failure("filtered", sample=2),  # the same trace as sample 1: revised once
        failure("parse"),
        failure("filtered", config="cause_reasoning"),
        failure("filtered", clip_id="gone"),
    ]
    base = replace(CLIP, revises=None, failed_reasoning=None, failed_answer=None)
    got = REVISED.expand([base], earlier)
    assert [(c.revises, c.failed_sample) for c in got] == [("filtered0", 0), ("filtered1", 1)]
    assert got[0].failed_reasoning == "No contact." and got[0].failed_answer == "<answer>A</answer>"
    ctx = REVISED.context(got[0], TAX)
    assert ctx["answer"] == "B. Collision" and ctx["failed_reasoning"] == "No contact."


def test_the_check_keeps_the_row_only_when_it_concludes_the_ground_truth():
    (candidate,) = parse(REVISED, trace("Contact with the truck."))
    (clip,) = CHECK.expand([CLIP], [candidate])
    assert CHECK.context(clip, TAX)["trace"] == "Contact with the truck."
    assert "B. Collision" not in CHECK.context(clip, TAX)["trace"]
    assert parse(CHECK, "<answer>B</answer>", clip=clip) == [candidate]
    with pytest.raises(Filtered, match="independent check answered A"):
        parse(CHECK, "<answer>A</answer>", clip=clip)
    with pytest.raises(ParseError, match="independent check"):
        parse(CHECK, "I cannot tell.", clip=clip)
    with pytest.raises(ParseError, match="independent check"):
        parse(CHECK, "", clip=clip)


# ---- short_qa --------------------------------------------------------------------


def qa(*pairs):
    return json.dumps({"pairs": [dict(zip(("dimension", "question", "answer"), p)) for p in pairs]})


GOOD_QA = [
    ("weather", "What is the weather like?", "Overcast."),
    ("impact_side", "Where is the ego vehicle hit?", "On the front."),
    ("actor_type", "Who collides with the ego vehicle?", "A truck."),
    ("event_type", "What happens?", "The ego vehicle collides with a truck."),
]


def test_short_qa_good_and_noisy_outputs():
    rows = parse(SHORT_QA, qa(*GOOD_QA))
    assert [(r.dimension, r.answer) for r in rows][:2] == [
        ("weather", "Overcast."),
        ("impact_side", "On the front."),
    ]
    assert len({r.id for r in rows}) == 4
    noisy = "Sure! Here you go:\n```json\n" + qa(*GOOD_QA[:3]) + "\n```\nHope it helps."
    assert len(parse(SHORT_QA, noisy)) == 3


@pytest.mark.parametrize(
    "pair, reason",
    [
        (("weather", "What is the weather?", "It is raining."), "contradicts the metadata"),
        (("impact_side", "Where is the impact?", "The rear of the ego."), "contradicts"),
        (("light", "When is it?", "In daylight."), "light: 'daylight'.*light night"),
        (("road", "Which road?", "A wide road."), "does not name the metadata's value highway"),
        (("road", "Which road?", "A highway with cars."), "actor_type: 'car'"),
        (("event_type", "What happens?", "A near miss with the truck."), "'Near-Collision'"),
    ],
)
def test_a_short_answer_that_contradicts_the_metadata_is_filtered(pair, reason):
    with pytest.raises(Filtered, match=reason):
        parse(SHORT_QA, qa(*[p for p in GOOD_QA if p[0] != pair[0]][:2], pair))


@pytest.mark.parametrize(
    "text, finish, reason",
    [
        ("", "stop", "empty output"),
        ('{"pairs": [{"dimension": "weather", "question": "Wh', "length", "cut off"),
        ("no json at all", "stop", "no JSON"),
        ('{"questions": []}', "stop", "no `pairs`"),
        (qa(*GOOD_QA[:2]), "stop", "2 pairs"),
        (qa(*GOOD_QA, *GOOD_QA[:2]), "stop", "6 pairs"),
        (qa(GOOD_QA[0], GOOD_QA[0], GOOD_QA[1]), "stop", "repeats"),
        (qa(("scene", "Where?", "In a city."), *GOOD_QA[:2]), "stop", "cannot|can check"),
        (qa(("weather", "The weather", "Overcast."), *GOOD_QA[1:3]), "stop", "'\\?'"),
        (qa(("weather", "Weather?", " "), *GOOD_QA[1:3]), "stop", "empty answer"),
        (
            qa(
                (
                    "weather",
                    "What is the weather?",
                    "it is grey and overcast with low dark "
                    "clouds over the wide highway all day long",
                ),
                *GOOD_QA[1:3],
            ),
            "stop",
            "16 words",
        ),
        ('{"pairs": [1, 2, 3]}', "stop", "not an object"),
    ],
)
def test_short_qa_malformed_outputs(text, finish, reason):
    with pytest.raises(ParseError, match=reason):
        parse(SHORT_QA, text, finish)


def test_short_qa_asks_only_what_the_metadata_can_check():
    normal = replace(CLIP, label="Normal Driving", facts={"event_type": ("Normal Driving",),
                     "weather": ("rain",), "road": ("highway",), "light": ("dusk",)})  # fmt: skip
    dims = [d["name"] for d in SHORT_QA.context(normal, TAX)["dimensions"]]
    assert dims == ["event_type", "weather", "light", "road"]
    enum = SHORT_QA.constraint(normal, False, TAX)["json"]["properties"]["pairs"]["items"]
    assert enum["properties"]["dimension"]["enum"] == dims
    assert SHORT_QA.context(replace(normal, facts={"weather": ("rain",)}), TAX) is None


# ---- caption_augmented -----------------------------------------------------------

GOOD_PARAPHRASE = (
    "At night, under an overcast sky, the ego vehicle is driving straight on a highway "
    "while a truck changes lanes. Roughly 2.5 seconds in, the ego vehicle crashes into the "
    "truck: the front of the ego vehicle hits the left side of the truck. The ego driver "
    "slams on the brakes. The truck is to blame."
)


def test_a_paraphrase_that_keeps_every_fact_is_kept():
    (row,) = parse(AUGMENTED, GOOD_PARAPHRASE, sample=1)
    assert row.answer == " ".join(GOOD_PARAPHRASE.split()) and row.source_caption == CAPTION
    assert row.sample == 1 and row.question


def test_a_paraphrase_that_flips_the_impact_side_is_filtered():
    flipped = GOOD_PARAPHRASE.replace("the front of the ego vehicle", "the rear of the ego vehicle")
    with pytest.raises(Filtered, match="impact_side") as e:
        parse(AUGMENTED, flipped)
    assert "'front'" in str(e.value) or "'rear'" in str(e.value)


@pytest.mark.parametrize(
    "old, new, reason",
    [
        ("under an overcast sky", "in the rain", "weather"),  # a contrary weather
        ("At night, under", "Under", "light: 'night'"),  # a dropped fact
        ("crashes into", "nearly collides with", "event_type"),  # another class
        ("The truck is to blame.", "The ego driver is at fault.", "blame"),
        ("a truck changes lanes", "a bus changes lanes", "actor_type"),
    ],
)
def test_paraphrases_that_lose_or_contradict_a_fact_are_filtered(old, new, reason):
    assert old in GOOD_PARAPHRASE
    with pytest.raises(Filtered, match=reason):
        parse(AUGMENTED, GOOD_PARAPHRASE.replace(old, new))


def test_turning_left_is_a_motion_not_an_impact_side():
    lex = load_lexicon(FOLDERS, TAX)
    said = lex.mentions("The car is turning left; the impact is on the right side.")
    assert said == {"motion": {"turning left"}, "impact_side": {"right"}, "actor_type": {"car"}}
    assert lex.mentions("It is unclear who is at fault.") == {"blame": {"unclear"}}


@pytest.mark.parametrize(
    "text, finish, reason",
    [
        ("", "stop", "empty output"),
        ("   \n ", "stop", "empty output"),
        (GOOD_PARAPHRASE[:80], "length", "cut off"),
        ("A crash.", "stop", "not a caption"),
    ],
)
def test_caption_augmented_malformed_outputs(text, finish, reason):
    with pytest.raises(ParseError, match=reason):
        parse(AUGMENTED, text, finish)


def test_a_paraphrase_that_adds_unverifiable_content_or_shrinks_is_filtered():
    added = GOOD_PARAPHRASE + " It is a government agency fined a million dollars." * 5
    with pytest.raises(Filtered, match=r"a paraphrase keeps 0\.5-1\.6x its length"):
        parse(AUGMENTED, added)
    with pytest.raises(Filtered, match="words for a caption of"):
        parse(AUGMENTED, "At night a truck hits the ego vehicle on a highway.")


def test_the_caption_itself_is_no_paraphrase():
    with pytest.raises(Filtered, match="not a paraphrase"):
        parse(AUGMENTED, CAPTION.upper())


# ---- cause_reasoning ------------------------------------------------------------


def test_cause_reasoning_filters_on_the_datasets_answer():
    (row,) = parse(CAUSE, trace("The truck cut in without room.", "D"))
    assert row.question == CLIP.cause_question and row.answer == "D. d"
    assert row.options == list(CLIP.cause_options)
    with pytest.raises(Filtered, match="answered B, the ground truth is D"):
        parse(CAUSE, trace("The road was slippery.", "B"))
    with pytest.raises(ParseError):
        parse(CAUSE, "<think>\nThe truck")
    assert "E" in CAUSE.constraint(CLIP, True, TAX)["regex"]
    assert CAUSE.context(replace(CLIP, cause_question=None), TAX) is None


def test_short_qa_constraint_through_xgrammar_allows_only_checkable_dimensions():
    """The clip's schema compiled by the grammar engine vLLM uses (xgrammar, in
    .venv-vllm): good pairs pass; a dimension the metadata has no value for, or two
    pairs, cannot be generated."""
    import subprocess

    from tests.builders.generate.test_task_parsers import XGRAMMAR_CHECK
    from tests.conftest import REPO

    python = REPO / ".venv-vllm" / "bin" / "python"
    if not python.exists():
        pytest.skip("no .venv-vllm (make .venv-vllm/.installed)")
    clip = replace(CLIP, facts={k: FACTS[k] for k in ("event_type", "weather", "road")})
    schema = SHORT_QA.constraint(clip, False, TAX)["json"]
    good = [
        ("weather", "What is the weather?", "Overcast."),
        ("road", "Which road is it?", "A highway."),
        ("event_type", "What happens?", "It collides with a truck."),
    ]
    unknown = [*good[:2], ("impact_side", "Where is the hit?", "The front.")]
    texts = [qa(*good), qa(*unknown), qa(*good[:2])]
    texts = [json.dumps(json.loads(t), separators=(",", ":")) for t in texts]
    out = subprocess.run(
        [str(python), "-c", XGRAMMAR_CHECK, json.dumps(schema), json.dumps(texts)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [True, False, False]
    assert len(parse(SHORT_QA, texts[0], clip=clip)) == 3


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda t: t.replace("  fog: [fog, foggy, mist, misty]\n", ""), r"weather\.fog: need"),
        (lambda t: t + "colour:\n  red: [red]\n", r"unknown fields \['colour'\]"),
        (lambda t: t.replace("  Collision: [collides", "  Collision: [[], collides"), "Collision"),
        (lambda t: "weather: [", "not YAML"),
    ],
)
def test_a_broken_word_list_names_the_file_and_key(tmp_path, edit, match):
    """An edited copy in the recipe's prompts folder is read first; a broken one stops
    the build at start (the CLI turns this ValueError into exit 2 with the message)."""
    (tmp_path / "checks").mkdir()
    text = (bundled("prompts") / "checks" / "fact_words.yaml").read_text()
    (tmp_path / "checks" / "fact_words.yaml").write_text(edit(text))
    with pytest.raises(ValueError, match=match) as e:
        load_lexicon([tmp_path, *FOLDERS], TAX)
    assert str(tmp_path / "checks" / "fact_words.yaml") in str(e.value)


def test_an_edited_leak_list_is_read_from_the_recipes_prompts_folder(tmp_path):
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "revision_leaks.txt").write_text("# mine\nas the hint says\n")
    lex = load_lexicon([tmp_path, *FOLDERS], TAX)
    assert lex.leaks == ("as the hint says",)
    assert (
        lex.leak("As the  hint says, B.") == "as the hint says" and lex.leak("ground truth") is None
    )
