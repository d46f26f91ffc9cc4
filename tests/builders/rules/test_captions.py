"""Caption rules: golden renders (hand-checked), missing and out-of-vocabulary values,
and clip-awareness (no event words in a Normal Driving clip's caption)."""

from __future__ import annotations

import re

import pytest

from vlm_autodrive.builders.core.taxonomy import EventClass, Taxonomy, load_taxonomy
from vlm_autodrive.builders.rules.captions import (
    MetadataNormalizer,
    caption_inputs,
    caption_samples,
    load_caption_template,
)
from vlm_autodrive.builders.synthetic.tables import synthetic_video
from vlm_autodrive.resources import bundled

TAX = load_taxonomy()
TEMPLATE = load_caption_template(TAX, [bundled("templates")])

# Words that only a caption of an event may contain.
EVENT_WORDS = re.compile(
    r"collid|collision|crash|contact|impact|\bhit\b|fault|blame|swerv|evasive|brakes hard|"
    r"danger|nearly|avoid|react|seconds? into",
    re.IGNORECASE,
)


def actor(role, type=None, motion=None, impact_side=None):
    return {"role": role, "type": type, "motion": motion, "impact_side": impact_side}


def caption(metadata, label, event_offset=None, event_time=3.0, taxonomy=TAX, template=TEMPLATE):
    norm = MetadataNormalizer(taxonomy)
    video = {"event_time": event_time}
    inputs = caption_inputs(video, norm.video_inputs(metadata), label, event_offset, taxonomy)
    return template.render(inputs), norm


COLLISION_VIDEO = {
    "weather": "clear",
    "light": "daylight",
    "road": "urban street",
    "scene": "urban",
    "blame": "other",
    "evasive_action": "braking",
    "actors": [
        actor("ego", "car", "going straight", "front"),
        actor("other", "truck", "turning left", "left"),
    ],
}


def test_golden_collision_clip():
    text, norm = caption(COLLISION_VIDEO, "Collision", event_offset=3.2)
    assert text == (
        "The clip is recorded in daylight under a clear sky. "
        "The ego vehicle is driving on an urban street in a city. "
        "The ego vehicle is going straight. A truck is turning left. "
        "About 3.2 seconds into the clip, the ego vehicle collides with the truck. "
        "The impact is on the front of the ego vehicle and the left side of the truck. "
        "The ego driver brakes hard. The truck is at fault."
    )
    assert norm.report() == {} and dict(norm.missing) == {}


def test_golden_normal_clip_of_the_same_video_is_scene_only():
    text, _ = caption(COLLISION_VIDEO, "Normal Driving", event_offset=None)
    assert text == (
        "The clip is recorded in daylight under a clear sky. "
        "The ego vehicle is driving on an urban street in a city."
    )


def test_golden_near_collision_with_missing_fields():
    md = {
        "light": "night",
        "evasive_action": "swerving right",
        "actors": [actor("other", "pedestrian", "crossing")],
    }
    text, norm = caption(md, "Near-Collision", event_offset=1.0)
    assert text == (
        "The clip is recorded at night. A pedestrian is crossing the road. "
        "About 1 second into the clip, the ego vehicle nearly collides with the pedestrian "
        "but avoids contact. The ego driver swerves to the right."
    )
    assert dict(norm.missing) == {"weather": 1, "road": 1, "scene": 1, "blame": 1}


def test_golden_out_of_vocabulary_values_are_generic_and_counted():
    md = {
        "weather": "hail",
        "road": "dirt track",
        "blame": "animal",
        "actors": [actor("ego", "car", None, "top"), actor("other", "scooter", "drifting")],
    }
    text, norm = caption(md, "Collision", event_offset=None)
    assert text == (
        "The clip is recorded in unusual weather. "
        "The ego vehicle is driving on an unusual kind of road. "
        "A road user is moving in an unusual way. "
        "The ego vehicle collides with the road user. "
        "The impact is on an unusual part of the ego vehicle. "
        "Who is at fault is not clear-cut."
    )
    assert norm.report() == {
        "actor_type": {"scooter": 1},
        "blame": {"animal": 1},
        "impact_side": {"top": 1},
        "motion": {"drifting": 1},
        "road": {"dirt track": 1},
        "weather": {"hail": 1},
    }


def test_golden_normal_video_describes_its_actors_but_no_event():
    md = {
        "weather": "rain",
        "light": "dusk",
        "road": "highway",
        "scene": "highway",
        "actors": [actor("ego", "bus", "changing lanes"), actor("other", "car", "stopped")],
    }
    text, _ = caption(md, "Normal Driving", event_time=None)
    assert text == (
        "The clip is recorded at dusk in the rain. The ego vehicle is driving on a highway. "
        "The ego vehicle, a bus, is changing lanes. A car is stopped."
    )


def test_golden_no_metadata_gives_an_empty_caption_or_the_bare_event():
    assert caption(None, "Normal Driving")[0] == ""
    assert caption({}, "Near-Collision", event_offset=2.5)[0] == (
        "About 2.5 seconds into the clip, the ego vehicle nearly collides with another road "
        "user but avoids contact."
    )


def test_a_new_class_needs_no_code_and_uses_its_description():
    classes = [
        *TAX.classes[:2],
        EventClass(
            name="Sudden Stop",
            mcq_option="Sudden Stop: the ego vehicle brakes to a halt abruptly.",
            description="The ego vehicle brakes abruptly to a standstill.",
        ),
        TAX.classes[2],
    ]
    tax = Taxonomy(classes=classes, vocab=TAX.vocab)
    template = load_caption_template(tax, [bundled("templates")])
    text, _ = caption({"weather": "fog"}, "Sudden Stop", 2.0, taxonomy=tax, template=template)
    assert text == (
        "The clip is recorded in fog. The ego vehicle brakes abruptly to a standstill. "
        "It happens about 2 seconds into the clip."
    )


def test_unusual_may_not_be_a_vocabulary_value():
    tax = Taxonomy(classes=TAX.classes, vocab={**TAX.vocab, "weather": ["clear", "unusual"]})
    with pytest.raises(ValueError, match="unusual"):
        MetadataNormalizer(tax)


def test_samples_cover_every_vocabulary_value():
    seen: dict[str, set] = {}
    for s in caption_samples(TAX):
        for f in ("weather", "light", "road", "scene", "blame", "evasive_action"):
            seen.setdefault(f, set()).add(s[f])
        for a in [s["ego"], *s["others"]]:
            if a:
                seen.setdefault("actor_type", set()).add(a["type"])
                seen.setdefault("motion", set()).add(a["motion"])
                seen.setdefault("impact_side", set()).add(a["impact_side"])
    for f, values in TAX.vocab.items():
        if f != "actor_role":
            assert set(values) <= seen[f], f


def test_clip_awareness_over_many_synthetic_videos():
    import random

    rng = random.Random(7)
    normal = events = 0
    for i in range(400):
        video, clips = synthetic_video(i, rng, TAX, normal_fraction=0.2)
        norm = MetadataNormalizer(TAX)
        vin = norm.video_inputs(video["metadata"])
        for c in clips:
            text = TEMPLATE.render(caption_inputs(video, vin, c["label"], c["event_offset"], TAX))
            if c["label"] == TAX.normal:
                normal += 1
                assert not EVENT_WORDS.search(text), (c["clip_id"], text)
            else:
                events += 1
                assert re.search(r"collides", text), (c["clip_id"], text)
    assert normal > 1000 and events > 200
