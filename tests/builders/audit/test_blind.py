"""Blind answerability: a planted leak is flagged with exactly its rows; clean configs
(the real rule splits' mcq, and a vqa whose options give nothing away) are not."""

from __future__ import annotations

import json
import random

import pyarrow as pa

from tests.builders.small_builds import rule_build
from vlm_autodrive.builders.audit.blind import blind_audit
from vlm_autodrive.builders.audit.report import page_summary
from vlm_autodrive.builders.audit.stage import run_audit
from vlm_autodrive.builders.dataset.folder import ConfigTables, write_dataset_folder
from vlm_autodrive.cli import main

CLASSES = ("Collision", "Near-Collision", "Normal Driving")
WORDS = ("amber", "bridge", "cyclist", "dusk", "gravel", "harbour", "junction", "kerb")
WORDS += ("lorry", "median")


def _vqa_rows(kind: str, videos: int = 40, per_video: int = 3, seed: int = 0) -> list[dict]:
    """vqa-shaped rows; `kind` plants where the answer is: `longest` (always the longest
    option), `named` (its words are in the question), `clean` (random, no clue)."""
    rng = random.Random(seed)
    rows = []
    for v in range(videos):
        for q in range(per_video):
            options = rng.sample(WORDS, 4)
            answer = rng.randrange(4)
            stem = "What is seen at the side of the road?"
            if kind == "longest":
                options[answer] = options[answer] + " beside the busy road"
            elif kind == "named":
                stem = f"The {options[answer]} is visible; what is seen at the side of the road?"
            letter = "ABCD"[answer]
            listing = "".join(f"\n{'ABCD'[i]}. {o}" for i, o in enumerate(options))
            rows.append(
                {
                    "id": f"{kind}-{v:03d}-{q}",
                    "clip_id": f"c{v:03d}",
                    "video_id": f"v{v:03d}",
                    "label": CLASSES[v % 3],
                    "split": "test" if v % 4 == 0 else "train",
                    "question": stem + listing + "\nAnswer with the letter.",
                    "options": options,
                    "answer_letter": letter,
                    "answer": f"{letter}. {options[answer]}",
                }
            )
    return rows


def _plant(build, name: str, rows: list[dict]) -> None:
    sides = {
        s: pa.Table.from_pylist([r for r in rows if r["split"] == s]) for s in ("train", "test")
    }
    config = ConfigTables(name, f"planted {name}", "test", f"{name}@0", sides)
    write_dataset_folder(build, [config], stage=f"planted_{name}", stage_info={}, top={})


def test_planted_leaks_are_flagged_with_their_rows_and_clean_configs_are_not(tmp_path, capsys):
    build = rule_build(tmp_path / "build", videos=60)
    planted = {k: _vqa_rows(k, seed=i) for i, k in enumerate(("longest", "named", "clean"))}
    for kind, rows in planted.items():
        _plant(build, f"vqa_{kind}", rows)

    report = run_audit(build, perceptual=False, plots=False)

    flags = {(f.config, f.baseline): f for f in report.leaks}
    longest = flags[("vqa_longest", "longest_option")]
    assert sorted(longest.ids) == sorted(r["id"] for r in planted["longest"])
    assert longest.accuracy == 1.0 and longest.chance == 0.25
    named = flags[("vqa_named", "option_in_question")]
    assert sorted(named.ids) == sorted(r["id"] for r in planted["named"])
    assert ("vqa_named", "most_shared_words") in flags
    assert report.flagged_configs == ["vqa_longest", "vqa_named"]  # not mcq, not vqa_clean
    # every baseline of the clean configs was scored, per class too, with an interval
    clean = [b for b in report.baselines if b.config in ("vqa_clean", "mcq")]
    assert {b.baseline for b in clean} == {
        "majority_letter", "longest_option", "most_shared_words", "option_in_question"
    }  # fmt: skip
    assert {b.label for b in clean} == {"all", *CLASSES}
    assert all(b.low <= b.accuracy <= b.high and not b.flagged for b in clean)

    # the command line prints the flags; report.json lists every leaking row
    assert main(["audit", str(build), "--bytes-only", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "LEAK vqa_longest: longest_option 100.0% vs chance 25.0%" in out
    assert "vqa_clean" not in out
    saved = json.loads((build / "audit" / "report.json").read_text())
    assert {tuple(sorted(f["ids"])) for f in saved["leaks"] if f["config"] == "vqa_longest"} == {
        tuple(sorted(longest.ids))
    }
    assert "vqa_longest" in (build / "audit" / "report.md").read_text()
    # the dataset card summarises it; the page's aggregates name the flags
    card = (build / "README.md").read_text()
    assert "## Audit" in card and "- `vqa_longest`: longest_option 100.0% vs chance 25.0%" in card
    page = page_summary(build)
    assert {f["config"] for f in page["flagged"]} == {"vqa_longest", "vqa_named"}


def test_majority_letter_is_fit_on_train_and_scored_on_test():
    """A train side that always answers B, a test side balanced: the letter prior of
    train does not pass for a leak on test; a test side that also always answers B does."""
    rows = _vqa_rows("clean", videos=60)
    for r in rows:
        if r["split"] == "train":
            r["answer_letter"] = "B"
    scores, flags, _ = blind_audit("x", rows)
    letter = next(s for s in scores if s.baseline == "majority_letter" and s.label == "all")
    assert letter.scored_on == "test" and not letter.flagged
    for r in rows:
        r["answer_letter"] = "B"
    scores, flags, _ = blind_audit("x", rows)
    assert [f.baseline for f in flags] == ["majority_letter"]
    assert flags[0].leaking_rows == len(rows)


def test_rows_without_usable_options_are_counted_not_scored():
    rows = _vqa_rows("clean", videos=8)
    rows[0]["answer_letter"] = "Z"
    rows[1]["options"] = []
    scores, _, skipped = blind_audit("x", rows)
    assert skipped == {"answer letter not an option": 1, "no options": 1}
    tested = sum(r["split"] == "test" for r in rows[2:])
    assert next(s for s in scores if s.label == "all").rows == tested
