"""Answer parsing over a table of realistic model outputs: good, noisy, empty, truncated,
malformed and hedged. Options as a balanced MCQ shows them: A Near-Collision,
B Collision, C Normal Driving (so letter and taxonomy order differ on purpose)."""

from __future__ import annotations

import pytest

from vlm_autodrive.builders.core.answers import (
    AMBIGUOUS,
    CONFLICT,
    EMPTY,
    INVALID_LETTER,
    NO_ANSWER,
    OK,
    TRUNCATED,
    UNPARSEABLE,
    option_texts_from_question,
    parse_answer,
)
from vlm_autodrive.builders.core.taxonomy import load_taxonomy

TAX = load_taxonomy()
OPTIONS = ["Near-Collision", "Collision", "Normal Driving"]
TEXT = {c.name: c.mcq_option for c in TAX.classes}
QUESTION = (
    "What kind of driving event happens in this dashcam video? Choose one option.\n"
    + "".join(f"{letter}. {TEXT[name]}\n" for letter, name in zip("ABC", OPTIONS))
    + "Reply with the letter of the correct option."
)
OPTION_TEXTS = option_texts_from_question(QUESTION, 3)
NEAR, COLL, NORMAL = OPTIONS

COSMOS = (
    "<think>\nThe ego vehicle follows a white truck. The truck brakes hard and the ego "
    "vehicle does not stop in time: its hood touches the truck's rear bumper.\n</think>\n\n"
    "<answer>\nB\n</answer>"
)

# (output, expected class or None, expected status)
CASES = [
    # good: the forms a model answers in
    ("B", COLL, OK),
    ("B.", COLL, OK),
    ("(B)", COLL, OK),
    ("b", COLL, OK),
    ("**B**", COLL, OK),
    ("Option B", COLL, OK),
    ("B - Collision", COLL, OK),
    ("Answer: B", COLL, OK),
    ("**Answer:** (C)\n", NORMAL, OK),
    ("B. Collision", COLL, OK),  # the mcq split's own answer form
    ("<answer>B</answer>", COLL, OK),
    ("<answer>\nA\n</answer>", NEAR, OK),
    (COSMOS, COLL, OK),
    ("<answer>Collision</answer>", COLL, OK),
    ("Collision", COLL, OK),
    ("near collision", NEAR, OK),
    ("NEAR-COLLISION", NEAR, OK),
    ("Normal_Driving", NORMAL, OK),
    (TEXT[COLL], COLL, OK),
    (TEXT[NORMAL].rstrip("."), NORMAL, OK),
    ("C. " + TEXT[NORMAL], NORMAL, OK),  # its text says "no collision or near-collision"
    ("The video shows a near-collision.", NEAR, OK),
    ("Normal driving, no collision.", NORMAL, OK),
    ("A. Near-Collision: the ego car brakes hard to avoid a collision.", NEAR, OK),
    # reasoning text followed by an answer
    ("The truck cuts in and the ego car brakes, stopping just short. The answer is A.", NEAR, OK),
    ("The road is clear and traffic flows normally.\n\nC", NORMAL, OK),
    ("Nothing unusual happens.\nFinal answer: **C. Normal Driving**", NORMAL, OK),
    ("The correct option is (B), because the cars touch.", COLL, OK),
    ("The answer is B, because the car hits the barrier.", COLL, OK),
    ("The car swerves but never touches the cyclist.\n</think>\n\nA", NEAR, OK),  # R1 form
    ("<answer>your answer</answer>\n<answer>C</answer>", NORMAL, OK),  # echoed format first
    # noisy
    ("  B<|im_end|>", COLL, OK),
    ("B. Collision\nB. Collision", COLL, OK),
    # empty
    ("", None, EMPTY),
    ("   \n ", None, EMPTY),
    (None, None, EMPTY),
    ("<answer></answer>", None, EMPTY),
    ("<think>\nThe car brakes.\n</think>\n<answer>", None, EMPTY),  # cut right after the tag
    # truncated
    ("<think>\nThe ego vehicle approaches the intersection while a", None, TRUNCATED),
    ("<think>A car. It might be a collision</think>", None, NO_ANSWER),
    # malformed
    ("<answer>E</answer>", None, INVALID_LETTER),
    ("D", None, INVALID_LETTER),
    ("I cannot tell from this video.", None, NO_ANSWER),
    ("A car drives down the street.", None, NO_ANSWER),  # "A" is an article, not option A
    ("ystom event w in driving driving drivingom", None, NO_ANSWER),  # random model noise
    ("ideing withetyCollisionigh", None, NO_ANSWER),  # a class name glued inside a word
    ("There is no collision.", None, NO_ANSWER),  # negated: names nothing
    # several answers
    ("A or B", None, AMBIGUOUS),
    ("B/C", None, AMBIGUOUS),
    ("The answer is B, or maybe C.", None, AMBIGUOUS),
    ("Collision or near-collision", None, AMBIGUOUS),
    ("A. Near-Collision\nB. Collision\nC. Normal Driving", None, AMBIGUOUS),  # options echoed
    ("(A) Near-Collision (B) Collision (C) Normal Driving", None, AMBIGUOUS),
    ("<answer>A</answer> and then <answer>B</answer>", None, AMBIGUOUS),
    ("Option A (near miss) is ruled out. Option B fits better, or C.", None, AMBIGUOUS),
    ("A. Collision", None, CONFLICT),  # A is Near-Collision here
]


@pytest.mark.parametrize(("output", "label", "status"), CASES)
def test_realistic_outputs(output, label, status):
    got = parse_answer(output, OPTIONS, OPTION_TEXTS)
    assert (got.label, got.status) == (label, status), got
    if label is None:
        assert got.prediction == UNPARSEABLE and got.letter is None and got.detail
    else:
        assert got.prediction == label
        assert got.letter == "ABC"[OPTIONS.index(label)]


def test_option_texts_are_read_from_the_question():
    assert [TEXT[n] for n in OPTIONS] == OPTION_TEXTS
    assert option_texts_from_question("no options here", 3) is None


def test_works_without_option_texts_and_with_more_classes():
    opts = ["Collision", "Near-Collision", "Normal Driving", "Sudden Stop", "Hard Braking"]
    assert parse_answer("E", opts).label == "Hard Braking"
    assert parse_answer("sudden stop", opts).label == "Sudden Stop"
    assert parse_answer("F", opts).status == INVALID_LETTER


def test_bad_option_lists_are_refused():
    with pytest.raises(ValueError):
        parse_answer("A", [])
    with pytest.raises(ValueError):
        parse_answer("A", ["x", "y"], ["only one text"])
