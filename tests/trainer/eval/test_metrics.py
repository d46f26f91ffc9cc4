"""The metrics reproduce the paper's Table 2 rows from confusion matrices consistent with
them, and count unparseable answers as the report says.

The paper gives, for 198 test clips (66 per class): Cosmos-Reason1-7B fine-tuned, direct
mode, accuracy 77.27% and Collision F1 0.69; zero-shot, accuracy 35.35% and Collision F1
0.00. The matrices below are ones consistent with those numbers (the paper does not
print its matrices); every other number is computed here by hand, as fractions.
"""

from __future__ import annotations

import pytest

from vlm_autodrive.builders.core.answers import UNPARSEABLE
from vlm_autodrive.trainer.eval.metrics import compute_metrics, expand_confusion
from vlm_autodrive.trainer.eval.report import compare_markdown, report_markdown, table2

CLASSES = ["Collision", "Near-Collision", "Normal Driving"]
NORMAL = "Normal Driving"

# Rows: gold Collision, Near-Collision, Normal Driving; columns: predicted, same order.
FINE_TUNED = [
    [45, 15, 6],  # Collision: TP 45, FN 21
    [12, 50, 4],
    [7, 1, 58],  # Collision column: 45 + 12 + 7 = 64 predicted, FP 19
]
ZERO_SHOT = [  # Collision never predicted: precision 0 by convention, F1 0.00
    [0, 30, 36],
    [0, 20, 46],
    [0, 16, 50],
]


def approx(x):
    return pytest.approx(x, abs=1e-12)


def row_report(name: str, mode: str, metrics: dict) -> dict:
    return {"name": name, "classes": CLASSES, "results": [{"mode": mode, "metrics": metrics}]}


def test_fine_tuned_direct_row_is_reproduced_exactly():
    m = compute_metrics(*expand_confusion(FINE_TUNED, CLASSES), CLASSES, NORMAL)
    assert m["n"] == 198 and m["correct"] == 153 and m["unparseable"] == 0
    assert m["accuracy"] == approx(153 / 198)  # 77.27%
    # Binary: event rows predicted as any event (45+15, 12+50) + normal predicted normal 58.
    assert m["binary_accuracy"] == approx((60 + 62 + 58) / 198)
    pc = m["per_class"]
    assert pc["Collision"]["precision"] == approx(45 / 64)
    assert pc["Collision"]["recall"] == approx(45 / 66)
    assert pc["Collision"]["f1"] == approx(2 * 45 / (2 * 45 + 19 + 21))  # 9/13 = 0.6923
    assert pc["Near-Collision"]["precision"] == approx(50 / 66)
    assert pc["Near-Collision"]["recall"] == approx(50 / 66)
    assert pc["Near-Collision"]["f1"] == approx(50 / 66)
    assert pc["Normal Driving"]["precision"] == approx(58 / 68)
    assert pc["Normal Driving"]["recall"] == approx(58 / 66)
    assert pc["Normal Driving"]["f1"] == approx(2 * 58 / (68 + 66))
    assert [pc[c]["support"] for c in CLASSES] == [66, 66, 66]
    assert [pc[c]["predicted"] for c in CLASSES] == [64, 66, 68]
    assert m["macro"]["f1"] == approx((9 / 13 + 50 / 66 + 116 / 134) / 3)
    assert m["confusion"]["columns"] == [*CLASSES, UNPARSEABLE]
    assert m["confusion"]["matrix"] == [[*r, 0] for r in FINE_TUNED]

    table = table2([row_report("Cosmos-Reason1-7B (fine-tuned)", "direct", m)])
    assert table.splitlines()[-1] == (
        "| Cosmos-Reason1-7B (fine-tuned) | direct | 0.70 | 0.68 | 0.69 | 0.76 | 0.76 | 0.76 "
        "| 0.85 | 0.88 | 0.87 | 77.27% | 90.91% | 0 | 198 |"
    )


def test_zero_shot_row_never_predicting_collision():
    m = compute_metrics(*expand_confusion(ZERO_SHOT, CLASSES), CLASSES, NORMAL)
    assert m["accuracy"] == approx(70 / 198)  # 35.35%
    c = m["per_class"]["Collision"]
    assert (c["precision"], c["recall"], c["f1"], c["predicted"]) == (0.0, 0.0, 0.0, 0)
    # Binary: Collision clips called Near-Collision (30) are right as events.
    assert m["binary_accuracy"] == approx((30 + 20 + 50) / 198)
    row = table2([row_report("Cosmos-Reason1-7B", "direct", m)]).splitlines()[-1]
    assert row.startswith("| Cosmos-Reason1-7B | direct | 0.00 | 0.00 | 0.00 |")
    assert "| 35.35% |" in row


def test_unparseable_answers_are_wrong_and_hit_recall_not_precision():
    # Two Collision clips and one Normal clip of the fine-tuned matrix answered with
    # nothing readable instead of Near-Collision / Collision.
    with_unparseable = [[45, 13, 6, 2], [12, 50, 4, 0], [6, 1, 58, 1]]
    m = compute_metrics(*expand_confusion(with_unparseable, CLASSES), CLASSES, NORMAL)
    assert m["unparseable"] == 3
    assert m["correct"] == 153 and m["accuracy"] == approx(153 / 198)
    pc = m["per_class"]
    # Recall of the gold class counts the unparseable answer as a miss.
    assert pc["Collision"]["recall"] == approx(45 / 66)
    assert pc["Normal Driving"]["recall"] == approx(58 / 66)
    # Precision only looks at what was predicted as the class.
    assert pc["Collision"]["precision"] == approx(45 / 63)
    assert pc["Near-Collision"]["precision"] == approx(50 / 64)
    # Binary: an unparseable answer is wrong even for an event clip.
    assert m["binary_accuracy"] == approx((58 + 62 + 58) / 198)
    assert m["confusion"]["matrix"] == with_unparseable


def test_all_unparseable_scores_zero_everywhere():
    gold = ["Collision", "Near-Collision", "Normal Driving"]
    m = compute_metrics(gold, [UNPARSEABLE] * 3, CLASSES, NORMAL)
    assert m["accuracy"] == 0 and m["binary_accuracy"] == 0 and m["unparseable"] == 3
    assert all(v["f1"] == 0 for v in m["per_class"].values())


def test_labels_outside_the_class_list_are_refused():
    with pytest.raises(ValueError, match="outside"):
        compute_metrics(["Collision"], ["Colision"], CLASSES, NORMAL)
    with pytest.raises(ValueError, match="outside"):
        compute_metrics(["Crash"], ["Collision"], CLASSES, NORMAL)
    with pytest.raises(ValueError, match="normal class"):
        compute_metrics(["Collision"], ["Collision"], CLASSES, "Normal")
    with pytest.raises(ValueError):
        compute_metrics([], [], CLASSES, NORMAL)


def test_markdown_report_and_compare_hold_every_row():
    ft = compute_metrics(*expand_confusion(FINE_TUNED, CLASSES), CLASSES, NORMAL)
    zs = compute_metrics(*expand_confusion(ZERO_SHOT, CLASSES), CLASSES, NORMAL)
    dataset = {
        "source": "org/data@v1",
        "revision": None,
        "config": "mcq",
        "split": "test",
        "rows": 198,
        "limited": False,
        "per_class": dict.fromkeys(CLASSES, 66),
        "clips_sha256": "ab" * 32,
    }

    def report(name, metrics):
        res = {
            "mode": "direct",
            "metrics": metrics,
            "prompt_template": "direct.jinja@0123456789ab",
            "system_prompt": None,
            "max_new_tokens": 32,
            "parse_status": {"ok": 198},
            "parse_method": {"short": 198},
            "confusion_png": "confusion_direct.png",
        }
        return {
            "name": name,
            "model": name,
            "classes": CLASSES,
            "dataset": dataset,
            "video": {"fps": 30.0, "max_frames": 180, "max_pixels": 81920},
            "runner": {"kind": "openai"},
            "results": [res],
        }

    md = report_markdown(report("fine-tuned", ft))
    assert "| fine-tuned | direct | 0.70 | 0.68 | 0.69 |" in md
    assert "| Collision | 45 | 15 | 6 | 0 | 66 |" in md  # confusion table with totals
    assert "![confusion matrix, direct](confusion_direct.png)" in md
    cmp = compare_markdown([report("zero-shot", zs), report("fine-tuned", ft)], ["a", "b"])
    rows = [ln for ln in cmp.splitlines() if ln.startswith("| zero-shot") or "| fine-tuned" in ln]
    assert len(rows) == 2 and "35.35%" in rows[0] and "77.27%" in rows[1]
    assert "Warning" not in cmp
    other = report("other", ft)
    other["dataset"] = {**dataset, "clips_sha256": "cd" * 32}
    assert "Warning" in compare_markdown([report("a", ft), other], ["a", "b"])
