"""The synthetic sample's cause questions: what MM-AU's Q&A sheets give per video (a
question, five options, the right one), made from the plan of an event video.

In: the video id, its label, the kind of encounter (`rear_end`, `cut_in`, `across`), the
other road user's type and who is at fault. Out: a `CauseQuestion` whose right option
follows from the encounter and whose option order is drawn from a hash of (seed, video
id), never from the plan's random generator, so the videos stay the same.
"""

from __future__ import annotations

from vlm_autodrive.builders.core.ranking import seeded_rank
from vlm_autodrive.builders.ingest.records import CauseQuestion

# The right cause of each encounter; `{other}` is the other road user's type.
CAUSES = {
    ("rear_end", "ego"): "The ego vehicle follows the {other} too closely and brakes too late.",
    ("rear_end", None): "The {other} ahead slows down suddenly in front of the ego vehicle.",
    ("cut_in", None): "The {other} changes lanes into the ego vehicle's path without room.",
    ("across", None): "The {other} crosses the ego vehicle's path without yielding.",
}
# Wrong causes, as long as the right ones and naming the road user as they do: a right
# cause that stood out by its length would let a model answer without the video (the
# audit's `longest_option` baseline; tests/builders/synthetic/test_cause.py).
DISTRACTORS = [
    "The ego vehicle runs a red light and turns in front of a {other}.",
    "The road is too slippery for the ego vehicle and the {other}.",
    "The {other} reverses into the ego vehicle from a parking space.",
    "The ego driver is distracted and drifts towards the {other}.",
    "A front tyre of the ego vehicle bursts as it passes the {other}.",
    "The brakes of the ego vehicle fail just as the {other} comes close.",
    "Glare from the low evening sun hides the {other} from the ego driver.",
]


def synthetic_cause(
    video_id: str, label: str, kind: str, other: str, blame: str | None, seed: int
) -> CauseQuestion:
    """The cause question of one event video (4 of the distractors and the right cause)."""
    right = CAUSES.get((kind, blame), CAUSES[(kind, None)]).format(other=other)
    # Four of the wrong causes, drawn per video like the option order.
    wrong = sorted(range(len(DISTRACTORS)), key=lambda i: seeded_rank(seed, "wrong", video_id, i))
    options = [right, *(DISTRACTORS[i].format(other=other) for i in wrong[:4])]
    order = sorted(range(5), key=lambda i: seeded_rank(seed, "cause", video_id, i))
    what = "near-collision" if label == "Near-Collision" else "collision"
    return CauseQuestion(
        question=f"What is the cause of the {what} in this video?",
        options=[options[i] for i in order],
        answer=order.index(0),
    )
