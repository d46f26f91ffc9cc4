"""The model splits' clip table: the inputs it makes and the fingerprints that decide
which clips a rebuild keeps whole (builders/generate/clip_sources.py)."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.generate.clip_sources import clip_file_states, clip_sources

CLIPS = ["c1", "c2", "c3"]


def _sources(tmp_path, caption=None, options=None, sides=None, hashes=None, question=None):
    clips = pa.table(
        {
            "clip_id": CLIPS,
            "video_id": ["v1", "v1", "v2"],
            "label": ["Collision", "Normal Driving", "Normal Driving"],
            "path": [f"clips/{c}.mp4" for c in CLIPS],
        }
    )
    captions = pa.table({"clip_id": CLIPS, "answer": caption or ["a", "b", "c"]})
    mcq = pa.table(
        {
            "clip_id": CLIPS,
            "question": question or ["q1", "q2", "q3"],
            "options": pa.array(options or [["x", "y"], ["x", "y"], ["x", "y"]]),
            "answer_letter": ["A", "B", "B"],
        }
    )
    videos = pa.table(
        {
            "video_id": ["v1", "v2"],
            "event_time": pa.array([3.0, None], pa.float64()),
            "metadata": pa.array([{"weather": "rain"}, {"weather": None}]),
        }
    )
    sides = sides or {"c1": "train", "c2": "test", "c3": "held_out"}
    rules = {"caption_metadata": captions, "mcq": mcq}
    return clip_sources(tmp_path, clips, sides, rules, videos, load_taxonomy(), hashes)


def test_inputs_are_the_train_and_test_clips_with_their_texts(tmp_path):
    sources = _sources(tmp_path)
    clips = sources.inputs()
    assert [c.clip_id for c in clips] == ["c1", "c2"]  # held_out left out
    c1 = clips[0]
    assert (c1.split, c1.caption, c1.mcq_question, c1.mcq_options) == (
        "train",
        "a",
        "q1",
        ("x", "y"),
    )
    assert c1.video_path == os.path.join(str(tmp_path.resolve()), "clips/c1.mp4")
    assert c1.cause_question is None and c1.cause_options == ()
    assert c1.facts  # the Collision clip of a video with an event has facts
    assert [c.clip_id for c in sources.inputs(skip={"c1"}, vlm={"c2": "v"})] == ["c2"]
    assert sources.inputs(skip={"c1"}, vlm={"c2": "v"})[0].vlm_caption == "v"


@pytest.mark.parametrize(
    "edit",
    [
        # text moved from one column to the next: the columns joined would not differ
        {"caption": ["aq", "b", "c"], "question": ["1", "q2", "q3"]},
        {"caption": ["ab", "b", "c"]},
        {"caption": [None, "b", "c"]},
        {"caption": ["", "b", "c"]},
        {"options": [[], ["x", "y"], ["x", "y"]]},
        {"options": [[""], ["x", "y"], ["x", "y"]]},
        {"options": [["x,y"], ["x", "y"], ["x", "y"]]},
        {"options": [["xy"], ["x", "y"], ["x", "y"]]},
        {"sides": {"c1": "test", "c2": "test", "c3": "held_out"}},
    ],
)
def test_any_edit_of_a_clip_changes_its_fingerprint_only(tmp_path, edit):
    before = _sources(tmp_path).fingerprints(None).to_pylist()
    after = _sources(tmp_path, **edit).fingerprints(None).to_pylist()
    assert before[0] != after[0]
    assert before[1] == after[1]


def test_null_empty_and_one_empty_option_lists_all_differ(tmp_path):
    prints = {
        repr(o): _sources(tmp_path, options=[o, ["x"], ["x"]]).fingerprints(None)[0].as_py()
        for o in (None, [], [""], ["", ""])
    }
    assert len(set(prints.values())) == 4, prints


def test_a_touched_clip_file_changes_its_fingerprint_a_planned_hash_stands_for_it(tmp_path):
    (tmp_path / "clips").mkdir()
    for c in CLIPS:
        (tmp_path / "clips" / f"{c}.mp4").write_bytes(b"x")
    sources = _sources(tmp_path)
    paths = [f"clips/{c}.mp4" for c in CLIPS]
    before = sources.fingerprints(clip_file_states(tmp_path, paths)).to_pylist()
    os.utime(tmp_path / "clips" / "c2.mp4", ns=(1, 1))
    after = sources.fingerprints(clip_file_states(tmp_path, paths)).to_pylist()
    assert before[0] == after[0] and before[1] != after[1]
    # states not read yet (the dry run): each file is looked at where it is
    assert sources.fingerprints({}).to_pylist() == after
    planned = _sources(tmp_path, hashes={"c2": "not cut yet:c2"})
    planned_prints = planned.fingerprints({}).to_pylist()
    assert planned_prints[0] == after[0] and planned_prints[1] != after[1]
