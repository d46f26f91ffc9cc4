"""Answer-letter balance: the paper's fixed option order (the letter follows the class,
so train answers mostly C) is flagged on train in every output a user reads, although
the blind baselines rightly find the class-balanced test side at chance; the default
balanced order, and uniform draws, are not flagged."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from vlm_autodrive.builders.audit.letters import letter_balance
from vlm_autodrive.builders.audit.report import AuditReport, page_summary
from vlm_autodrive.builders.audit.stage import run_audit
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.rules.config import RuleSplitsConfig
from vlm_autodrive.builders.rules.mcq import option_order
from vlm_autodrive.builders.rules.stage import build_rule_splits
from vlm_autodrive.builders.synthetic.tables import write_synthetic_tables
from vlm_autodrive.cli import main

QUICKSTART = Path(__file__).parents[3] / "recipes" / "quickstart.yaml"


def _rule_build(build: Path, rules: dict) -> Path:
    """Synthetic clip tables (30 videos) -> the rule configs with these `rules`."""
    write_synthetic_tables(build, 30, seed=3, collision_fraction=0.3)
    build_rule_splits(build, RuleSplitsConfig.model_validate(rules), load_taxonomy(), {})
    return build


def _side(letters: str, options: int = 3, side: str = "train") -> list[dict]:
    return [
        {"split": side, "options": ["o"] * options, "answer_letter": a, "id": f"{side}{k}"}
        for k, a in enumerate(letters)
    ]


def test_fixed_option_order_is_flagged_on_train_in_every_output(tmp_path, capsys):
    build = _rule_build(tmp_path / "build", {"test_per_class": 2, "mcq_options": "fixed"})

    report = run_audit(build, perceptual=False, plots=False)

    sides = {(b.config, b.side): b for b in report.letter_balance}
    train, test = sides[("mcq", "train")], sides[("mcq", "test")]
    assert train.flagged and train.letter == "C" and train.uniform == round(1 / 3, 6)
    assert train.share == round(train.count / train.rows, 6) > 0.5 and train.low > 1 / 3
    assert train.letters["C"] == train.count and sum(train.letters.values()) == train.rows
    # the test side is balanced per class, so its letters are too: not flagged, and the
    # train majority letter scored on test stays at chance (the blind question, kept)
    assert not test.flagged and set(test.letters.values()) == {test.rows // 3}
    assert not report.leaks
    expect = f"mcq train: letter C {train.share:.1%} of {train.rows} rows vs 33.3% uniform"

    assert main(["audit", str(build), "--bytes-only", "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert f"LETTERS {expect}" in printed and "set rules.mcq_options: balanced" in printed
    saved = json.loads((build / "audit" / "report.json").read_text())
    assert [(b["config"], b["side"]) for b in saved["letter_balance"] if b["flagged"]] == [
        ("mcq", "train")
    ]
    md = (build / "audit" / "report.md").read_text()
    assert "## Answer letters" in md and "| mcq | train |" in md and "IMBALANCED" in md
    card = (build / "README.md").read_text()
    assert f"- `mcq` train: letter C {train.share:.1%}" in card
    assert "set `rules.mcq_options: balanced`" in card
    assert [b["side"] for b in page_summary(build)["letter_imbalance"]] == ["train"]


def test_the_default_quickstart_option_order_is_not_flagged(tmp_path, capsys):
    rules = yaml.safe_load(QUICKSTART.read_text())["rules"]
    assert rules["mcq_options"] == "balanced"
    build = _rule_build(tmp_path / "build", rules)

    report = run_audit(build, perceptual=False, plots=False)

    assert {b.side for b in report.letter_balance if b.config == "mcq"} == {"train", "test"}
    assert not report.letter_flags
    assert "answer letters: no letter 5 points or more over uniform" in report.summary()
    assert "No answer letter is 5 points or more" in (build / "README.md").read_text()


def test_the_uniform_share_follows_each_rows_number_of_options():
    # 300 rows of 2 options and 300 of 4, each balanced: A is 37.5% of all rows, which is
    # its uniform share (1/2 of half the rows + 1/4 of the other half), not 25%
    mixed = _side("AB" * 150, options=2) + _side("ABCD" * 75, options=4)
    (side,) = letter_balance("vqa", mixed)
    assert side.uniform == 0.375 and side.share == 0.375 and not side.flagged
    assert side.letters == {"A": 225, "B": 225, "C": 75, "D": 75}
    # the 4-option rows always answer D: 50% of rows against D's 12.5% uniform share
    skewed = _side("ABC" * 10) + _side("D" * 30, options=4)
    (side,) = letter_balance("vqa", skewed)
    assert (side.letter, side.share, side.uniform, side.flagged) == ("D", 0.5, 0.125, True)


def test_uniform_draws_are_flagged_no_more_often_than_the_level():
    """The balanced order's draws (rules/mcq.py), 400 sides of 12 rows: flagged at most
    5% of the time over the 3 letters, though a 12-row side varies widely."""
    flagged = 0
    for seed in range(400):
        orders = [option_order("balanced", 3, seed, f"clip{k}") for k in range(12)]
        letters = "".join("ABC"[o.index(2)] for o in orders)
        flagged += letter_balance("mcq", _side(letters))[0].flagged
    assert flagged <= 0.05 * 400
    assert letter_balance("mcq", _side("C" * 10 + "AB"))[0].flagged


def test_sides_test_and_train_are_checked_apart_and_old_reports_still_load():
    rows = _side("ABC" * 10) + _side("A" * 20, side="test")
    checked = {b.side: b.flagged for b in letter_balance("x", rows)}
    assert checked == {"train": False, "test": True}
    assert AuditReport.from_dict({"build": "old", "leaks": []}).letter_balance == []
