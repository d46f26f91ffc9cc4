"""The synthetic sample's cause questions: every event video has one (as MM-AU's do),
five distinct options with the right one following the encounter, the same for a seed;
Normal Driving videos have none; the drawing plan is untouched by them."""

from __future__ import annotations

import dataclasses

from vlm_autodrive.builders.synthetic import sample
from vlm_autodrive.builders.synthetic.sample import plan_sample


def test_every_event_video_has_a_cause_question_and_normal_ones_none():
    plans = plan_sample(24, seed=3)
    events = [p for p in plans if p.entry.label != "Normal Driving"]
    assert events and len(events) < len(plans)
    for p in plans:
        cause = p.entry.metadata.cause
        if p.entry.label == "Normal Driving":
            assert cause is None
            continue
        assert len(cause.options) == len(set(cause.options)) == 5
        right = cause.options[cause.answer]
        other = p.entry.metadata.actors[1].type
        assert other in right and "ego vehicle" in right
        assert cause.question.startswith("What is the cause of the")
    answers = {p.entry.metadata.cause.answer for p in events}
    assert len(answers) > 1  # the right option is not always at the same letter
    again = plan_sample(24, seed=3)
    assert [p.entry for p in again] == [p.entry for p in plans]


def test_the_cause_draws_nothing_from_the_plans_generator(monkeypatch):
    """Without the cause, the same videos: the cause never draws from the plan's rng."""
    with_cause = plan_sample(12, seed=5)
    monkeypatch.setattr(sample, "synthetic_cause", lambda *a, **k: None)
    without = plan_sample(12, seed=5)
    for a, b in zip(with_cause, without):
        a_meta = a.entry.metadata.model_copy(update={"cause": None})
        assert a_meta == b.entry.metadata
        assert dataclasses.replace(a, entry=b.entry) == b


def test_no_text_baseline_answers_the_cause_question_over_chance():
    """The audit's blind baselines (longest option, words shared with the question) pick
    the right cause at about chance: the right option does not stand out by its text.
    With the first, shorter distractors `longest_option` scored 0.92 here."""
    from vlm_autodrive.builders.audit.blind import TEXT_BASELINES, _credit, text_baseline_scores

    causes = [p.entry.metadata.cause for p in plan_sample(600, seed=0)]
    causes = [c for c in causes if c is not None]
    assert len(causes) > 300
    for baseline in TEXT_BASELINES:
        credit = [
            _credit(text_baseline_scores(c.question, c.options)[baseline], c.answer) for c in causes
        ]
        accuracy = sum(credit) / len(causes)
        assert accuracy <= 0.2 + 0.05, f"{baseline}: {accuracy:.2f} against chance 0.20"
