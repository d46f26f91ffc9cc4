"""Duplicates: a re-encoded, resized copy of a synthetic source is found (through ingest,
chunk, the rule splits and the audit, as a user builds); different synthetic videos are
not matched at the threshold; byte-identical files and repeated questions are counted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vlm_autodrive.builders.audit.calibrate import calibrate, reencode_copy
from vlm_autodrive.builders.audit.duplicates import (
    HashCache,
    question_duplicates,
    source_duplicates,
)
from vlm_autodrive.builders.audit.phash import DEFAULT_THRESHOLD, distance, hash_video
from vlm_autodrive.builders.audit.stage import run_audit
from vlm_autodrive.builders.clips.stage import run_chunk
from vlm_autodrive.builders.core.sections import ChunkConfig
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.stage import run_ingest
from vlm_autodrive.builders.rules.config import RuleSplitsConfig
from vlm_autodrive.builders.rules.stage import build_rule_splits
from vlm_autodrive.builders.synthetic.sample import generate_sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """6 synthetic videos of 6 s at 160x96 (about 2 s to write)."""
    root = tmp_path_factory.mktemp("sample")
    generate_sample(root, 6, seed=4, duration=6.0, width=160, height=96)
    return root


def test_different_synthetic_videos_do_not_match_and_reencoded_copies_do(sample, tmp_path):
    videos = sorted((sample / "videos").glob("*.mp4"))
    cal = calibrate(videos, tmp_path / "copies", DEFAULT_THRESHOLD)
    assert cal.false_positives == 0, cal.format()
    assert cal.copies_found == cal.copies == len(videos), cal.format()
    assert cal.different_pairs == len(videos) * (len(videos) - 1) // 2


def test_a_reencoded_resized_copy_of_a_source_is_found_by_the_audit(sample, tmp_path):
    lines = (sample / "manifest.jsonl").read_text().splitlines()
    entry = json.loads(lines[0])
    copy = reencode_copy(sample / entry["path"], tmp_path / "copy.mp4", 96, 58, crf=32, gop=50)
    manifest = tmp_path / "manifest.jsonl"
    rows = [json.loads(line) for line in lines]
    for r in rows:
        r["path"] = str((sample / r["path"]).resolve())
    rows.append({**entry, "video_id": "copy_of_" + entry["video_id"], "path": str(copy)})
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    build = tmp_path / "build"
    tax = load_taxonomy()
    run_ingest(manifest, build, tax, progress=False)
    run_chunk(build, ChunkConfig(window=3, stride=3), tax, progress=False)
    rules = RuleSplitsConfig(test_per_class=1, on_short="take_available")
    build_rule_splits(build, rules, tax, {})

    report = run_audit(build, plots=False)

    near = [g for g in report.duplicates if g.kind == "source_near"]
    assert [g.members for g in near] == [
        sorted([entry["video_id"], "copy_of_" + entry["video_id"]])
    ]
    assert 0 <= near[0].distance <= DEFAULT_THRESHOLD
    assert report.counts["files"]["sources"] == {"hashed": len(rows)}
    # nothing changed: the last report stands, no work
    same = run_audit(build, plots=False)
    assert same.notes == ["up to date: nothing changed since the last audit"]
    assert same.to_dict() | {"notes": []} == report.to_dict()
    # a clip file touched: the audit runs again, but reads only that file again
    # (sha256 and perceptual signatures are kept per file while size and time hold)
    clip = next((build / "clips").rglob("*.mp4"))
    clip.touch()
    again = run_audit(build, plots=False)
    assert report.files_read > len(rows) and again.files_read == 1
    assert again.to_dict() == report.to_dict()


def test_byte_identical_sources_are_one_group_with_their_sides(sample, tmp_path):
    src = sorted((sample / "videos").glob("*.mp4"))
    twin = shutil.copy(src[1], tmp_path / "twin.mp4")
    videos = [
        {"video_id": "a", "path": str(src[1])},
        {"video_id": "b", "path": str(twin)},
        {"video_id": "c", "path": str(src[2])},
        {"video_id": "gone", "path": str(tmp_path / "missing.mp4")},
    ]
    sides = {"a": {"train"}, "b": {"test"}, "c": {"train"}}
    groups, counts = source_duplicates(videos, sides, HashCache(tmp_path / "h.parquet"))
    assert [(g.kind, g.members, g.sides, g.crosses_sides) for g in groups] == [
        ("source_bytes", ["a", "b"], ["train", "test"], True)
    ]  # identical bytes are not reported again as near-duplicates
    assert counts == {"hashed": 3, "missing": 1}


def test_an_unreadable_video_is_an_error_not_a_stop(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    h = hash_video(bad, "bad")
    assert h.signature is None and h.error


def test_repeated_generated_questions_are_counted_per_side():
    rows = [
        {"split": "train", "question": "Q1", "options": ["a", "b"]},
        {"split": "train", "question": "Q1", "options": ["a", "b"]},
        {"split": "train", "question": "Q1", "options": ["b", "a"]},
        {"split": "test", "question": "Q1", "options": ["a", "b"]},
    ]
    test, train = question_duplicates("vqa", rows)  # sides in name order
    assert (train.side, train.rows, train.distinct, train.duplicate_rows) == ("train", 3, 2, 1)
    assert (train.top_question, train.top_count) == ("Q1", 2)
    assert (test.rows, test.duplicate_rows) == (1, 0)


def test_distance_is_zero_for_the_same_file(sample):
    v = sorted((sample / "videos").glob("*.mp4"))[0]
    assert distance(hash_video(v), hash_video(v)) == pytest.approx(0.0, abs=1e-6)
