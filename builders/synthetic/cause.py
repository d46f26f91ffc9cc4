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
DISTRACTORS = [
    "The ego vehicle runs a red light.",
    "The road is too slippery for the ego vehicle to stop.",
    "The ego driver is distracted and drifts out of the lane.",
    "A tyre of the ego vehicle bursts.",
    "The {other} reverses into the ego vehicle.",
]


def synthetic_cause(
    video_id: str, label: str, kind: str, other: str, blame: str | None, seed: int
) -> CauseQuestion:
    """The cause question of one event video (4 distractors and the right cause)."""
    right = CAUSES.get((kind, blame), CAUSES[(kind, None)]).format(other=other)
    options = [right, *(d.format(other=other) for d in DISTRACTORS[:4])]
    order = sorted(range(5), key=lambda i: seeded_rank(seed, "cause", video_id, i))
    what = "near-collision" if label == "Near-Collision" else "collision"
    return CauseQuestion(
        question=f"What is the cause of the {what} in this video?",
        options=[options[i] for i in order],
        answer=order.index(0),
    )
