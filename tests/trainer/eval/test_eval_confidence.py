"""Eval that says how sure it is: bootstrap intervals clustered by source video for every
metric (seeded, the same bytes twice), `eval compare A B` with the paired difference and
McNemar's exact test, `--mode blind` (no video sent), and reasoning-mode outputs without a
closed `<answer>` counted unparseable instead of scanned for class names."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.trainer.eval.test_eval_e2e import Scripted, gold_letter, mcq_test_rows
from tests.trainer.fixtures import make_build
from vlm_autodrive.builders.core.answers import option_letters
from vlm_autodrive.builders.dataset.folder import data_path
from vlm_autodrive.trainer.eval import cli as eval_cli
from vlm_autodrive.trainer.eval.bootstrap import (
    bootstrap_intervals,
    mcnemar_exact,
    paired_difference,
)
from vlm_autodrive.trainer.eval.harness import EvalConfig, run_eval
from vlm_autodrive.trainer.eval.metrics import compute_metrics, expand_confusion
from vlm_autodrive.trainer.eval.runners.base import RunnerOutput

CLASSES = ["Collision", "Near-Collision", "Normal Driving"]
NORMAL = "Normal Driving"
FINE_TUNED = [[45, 15, 6], [12, 50, 4], [7, 1, 58]]  # the paper's 77.27% row, 198 clips


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    return make_build(tmp_path_factory.mktemp("conf") / "sample")


def quiet(_):
    pass


def test_intervals_at_the_papers_size_and_clustering_widens_them():
    gold, pred = expand_confusion(FINE_TUNED, CLASSES)
    own = bootstrap_intervals(gold, pred, [f"v{i}" for i in range(198)], CLASSES, NORMAL)
    lo, hi = own["accuracy"]
    assert lo < 153 / 198 < hi and 0.10 < hi - lo < 0.13  # about +-5.8 points, as the issue
    assert own["bootstrap"]["clusters"] == 198 and own["bootstrap"]["seed"] == 0
    m = compute_metrics(gold, pred, CLASSES, NORMAL)
    for c in CLASSES:
        for k in ("precision", "recall", "f1"):
            low, high = own["per_class"][c][k]
            assert low <= m["per_class"][c][k] <= high
    for k in ("precision", "recall", "f1"):
        assert own["macro"][k][0] <= m["macro"][k] <= own["macro"][k][1]
    # Six clips of one video share their class (expand_confusion lists them by class):
    # the same answers, resampled by video, are less sure.
    grouped = bootstrap_intervals(gold, pred, [f"v{i // 6}" for i in range(198)], CLASSES, NORMAL)
    assert grouped["accuracy"][1] - grouped["accuracy"][0] > 1.5 * (hi - lo)
    assert grouped["bootstrap"]["clusters"] == 33
    # Seeded: the same input gives the same numbers; another seed others.
    again = bootstrap_intervals(gold, pred, [f"v{i}" for i in range(198)], CLASSES, NORMAL)
    assert json.dumps(again) == json.dumps(own)
    other = bootstrap_intervals(gold, pred, [f"v{i}" for i in range(198)], CLASSES, NORMAL, seed=1)
    assert other["accuracy"] != own["accuracy"]


def test_resampling_takes_whole_videos():
    # Two videos of ten clips: one all right, one all wrong. Drawn by video, a resample's
    # accuracy can only be 0, 1/2 or 1.
    gold = ["Collision"] * 20
    pred = ["Collision"] * 10 + ["Normal Driving"] * 10
    iv = bootstrap_intervals(gold, pred, ["a"] * 10 + ["b"] * 10, CLASSES, NORMAL)
    assert iv["accuracy"] == [0.0, 1.0]
    # Near-Collision never occurs: its recall has no interval, its precision is 0.
    assert iv["per_class"]["Near-Collision"]["recall"] is None
    assert iv["per_class"]["Near-Collision"]["precision"] == [0.0, 0.0]


def test_mcnemar_exact_and_paired_difference():
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(0, 10) == pytest.approx(2 / 1024)
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024)
    gold, a = expand_confusion(FINE_TUNED, CLASSES)
    b = list(gold)  # B answers every clip right
    d = paired_difference(gold, a, b, [f"v{i // 2}" for i in range(198)], CLASSES, NORMAL)
    assert d["accuracy"]["a"] == pytest.approx(153 / 198) and d["accuracy"]["b"] == 1.0
    assert d["accuracy"]["difference"] == pytest.approx(45 / 198)
    lo, hi = d["accuracy"]["interval"]
    assert 0 < lo < 45 / 198 < hi
    assert d["mcnemar"] == {
        "only_a_correct": 0,
        "only_b_correct": 45,
        "p_value": pytest.approx(2 / 2**45),
    }
    same = paired_difference(gold, a, a, [f"v{i}" for i in range(198)], CLASSES, NORMAL)
    assert same["accuracy"]["interval"] == [0.0, 0.0] and same["mcnemar"]["p_value"] == 1.0


def test_every_metric_of_the_report_has_its_interval_printed(build, tmp_path, capsys):
    def answer(item):  # right on every other clip
        letter = gold_letter(build, item)
        return letter if int(item.key, 16) % 2 else "B" if letter == "A" else "A"

    reports = []
    for out in ("a", "b"):
        cfg = EvalConfig(model="m", dataset=str(build), out=tmp_path / out)
        reports.append(run_eval(cfg, quiet, lambda c, root: Scripted(answer)).report)
    a = reports[0]
    iv = a["results"][0]["metrics"]["intervals"]
    assert set(iv) == {"accuracy", "binary_accuracy", "macro", "per_class"}
    assert all(len(iv["per_class"][c]) == 3 for c in a["classes"])
    assert a["bootstrap"]["cluster"] == "video_id"
    assert a["bootstrap"]["clusters"] == len({r["video_id"] for r in mcq_test_rows(build)})
    # Deterministic: two runs, the same report bytes (timing aside).
    assert json.dumps(reports[0]["results"]) == json.dumps(reports[1]["results"])
    md = (tmp_path / "a" / "report.md").read_text()
    acc = a["results"][0]["metrics"]["accuracy"]
    lo, hi = iv["accuracy"]
    assert f"{100 * acc:.2f}% [{100 * lo:.1f}, {100 * hi:.1f}]" in md
    assert "resamples the" in md and "source videos" in md
    preds = pq.read_table(tmp_path / "a" / "predictions.parquet").to_pylist()
    assert {p["video_id"] for p in preds} == {r["video_id"] for r in mcq_test_rows(build)}


def test_compare_gives_the_paired_difference_and_mcnemar(build, tmp_path, capsys):
    rows = mcq_test_rows(build)
    wrong_first = {}

    def weak(item):  # wrong on the first two clips it is asked
        wrong_first.setdefault(item.key, len(wrong_first))
        letter = gold_letter(build, item)
        return letter if wrong_first[item.key] >= 2 else "B" if letter == "A" else "A"

    run_eval(EvalConfig(model="weak", dataset=str(build), out=tmp_path / "a"), quiet,
             lambda c, root: Scripted(weak))  # fmt: skip
    run_eval(EvalConfig(model="strong", dataset=str(build), out=tmp_path / "b"), quiet,
             lambda c, root: Scripted(lambda it: gold_letter(build, it)))  # fmt: skip
    assert eval_cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    text = capsys.readouterr().out
    assert "## Paired: B - A, strong (direct) minus weak (direct)" in text
    n = len(rows)
    diff = 100 * 2 / n
    assert f"| Accuracy | {100 * (n - 2) / n:.2f}% | 100.00% | {diff:+.2f} pts |" in text
    assert "only A right on 0 clips, only B right on 2; two-sided p = 0.5" in text
    assert f"On the {n} clips both answered" in text
    # Without its predictions a report cannot be paired: a message, exit 2.
    (tmp_path / "b" / "predictions.parquet").unlink()
    assert eval_cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "predictions.parquet: no predictions beside" in capsys.readouterr().err


def test_blind_mode_sends_no_video(build, tmp_path):
    from tests.doubles.fake_server import FakeOpenAIServer

    rows = mcq_test_rows(build)
    with FakeOpenAIServer(model="served-vlm", answer=lambda body, i: "A") as server:
        cfg = EvalConfig(
            model="served-vlm",
            dataset=str(build),
            modes=("direct", "blind"),
            base_url=server.base_url,
            out=tmp_path / "blind",
        )
        res = run_eval(cfg, quiet)
        bodies = server.bodies
    assert len(bodies) == 2 * len(rows) and res.errors == 0
    parts = [[p["type"] for p in b["messages"][-1]["content"]] for b in bodies]
    assert sorted(map(tuple, parts)) == sorted(
        [("video_url", "text")] * len(rows) + [("text",)] * len(rows)
    )
    blind = [b for b in bodies if len(b["messages"][-1]["content"]) == 1]
    assert all(b["messages"][0]["role"] == "system" for b in blind)  # the direct system turn
    direct, blind_res = res.report["results"]
    assert (direct["mode"], direct["video_input"]) == ("direct", True)
    assert (blind_res["mode"], blind_res["video_input"]) == ("blind", False)
    assert blind_res["prompt_template"] == direct["prompt_template"]  # the same question
    assert blind_res["chance_accuracy"] == pytest.approx(1 / 3)  # three options each
    md = (res.out / "report.md").read_text()
    assert "| served-vlm | blind |" in md and "Asked **blind**" in md
    acc = 100 * blind_res["metrics"]["accuracy"]
    assert f"Accuracy {acc:.2f}% [" in md and "against 33.33% by guessing" in md


class ReasoningReplies:
    """A runner whose reasoning replies are scripted per clip (with finish reasons)."""

    model_id = "replies"

    def __init__(self, build):
        self.build = build
        self.rows = pq.read_table(data_path(build, "mcq", "train")).to_pylist()

    def describe(self):
        return {"scripted": True}

    def generate(self, items):
        for k, it in enumerate(items):
            row = next(r for r in self.rows if (self.build / r["video"]).resolve() == it.video)
            letter = row["answer_letter"]
            name = row["options"][option_letters(len(row["options"])).index(letter)]
            replies = [
                # cut off at the token limit, naming a class along the way: never scanned
                (f"<think>\nThis looks like {name}, {name}. Let me look again at", "length"),
                (f"<think>\nIt is {name}.\n</think>\n\nThe answer is {name}.", "stop"),
                (f"<think>\nIt is {name}.\n</think>\n\n<answer>\n{letter}", "length"),
                (f"<think>\nIt is {name}.\n</think>\n\n<answer>\n{letter}\n</answer>", "stop"),
            ]
            text, finish = replies[k % 4]
            yield RunnerOutput(it.key, text, finish_reason=finish)

    def close(self):
        pass


def test_reasoning_output_without_a_closed_answer_is_unparseable(build, tmp_path):
    cfg = EvalConfig(
        model="r", dataset=str(build), split="train", modes=("reasoning",), out=tmp_path / "r"
    )
    res = run_eval(cfg, quiet, lambda c, root: ReasoningReplies(build))
    preds = pq.read_table(res.out / "predictions.parquet").to_pylist()
    by_finish = {(p["finish_reason"], "</answer>" in p["raw_output"]): p for p in preds}
    assert all(p["parse_method"] in ("", "answer_tag") for p in preds)
    cut = [p for p in preds if "Let me look again" in p["raw_output"]]
    assert cut and all(p["parse_status"] == "truncated" for p in cut)
    assert all(p["prediction"] == "unparseable" for p in cut)
    untagged = [p for p in preds if "The answer is" in p["raw_output"]]
    assert untagged and all(p["parse_status"] == "no_answer" for p in untagged)
    assert "closed <answer>" in untagged[0]["parse_detail"]
    unclosed = [p for p in preds if p["raw_output"].endswith(p["gold_letter"])]
    assert unclosed and all(p["prediction"] == "unparseable" for p in unclosed)
    assert by_finish[("stop", True)]["correct"]
    m = res.report["results"][0]["metrics"]
    assert m["correct"] == sum(p["correct"] for p in preds) == len(preds) - m["unparseable"]
