"""The paper's Table 2 metrics from gold labels and parsed predictions, with scikit-learn.

In: gold class names, predicted class names (or `unparseable`), the class list in
display order and the background (normal) class. Out: a plain dict (JSON-ready).

How unparseable answers count (the toolkit's rule, stated in every report):

- accuracy: wrong (an unparseable answer never equals the gold class);
- per-class precision/recall/F1: `unparseable` is a label outside the class list, so it
  counts against the recall of the gold class (a miss) and against no class's precision
  (no class was predicted);
- binary anomaly accuracy (normal vs. any event class): wrong;
- confusion matrix: an extra `unparseable` column; its rows are the gold classes only.

A class that is never predicted has precision 0 (not undefined), and its F1 is then 0,
as the paper's zero-shot Collision F1 of 0.00 reads (`zero_division=0`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vlm_autodrive.builders.core.answers import UNPARSEABLE

EVENT = "event"
NORMAL = "normal"


def compute_metrics(
    gold: Sequence[str], pred: Sequence[str], classes: Sequence[str], normal: str
) -> dict[str, Any]:
    """Per-class P/R/F1 and support, accuracy, binary anomaly accuracy, macro averages,
    the confusion matrix and the count of unparseable answers.

    `gold` must hold class names only; `pred` class names or `unparseable` (anything
    else is refused: a typo in a label would silently become a miss otherwise).
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    classes = list(classes)
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    if not gold:
        raise ValueError("no predictions to score")
    if normal not in classes:
        raise ValueError(f"normal class {normal!r} is not one of {classes}")
    unknown_gold = sorted(set(gold) - set(classes))
    unknown_pred = sorted(set(pred) - set(classes) - {UNPARSEABLE})
    if unknown_gold or unknown_pred:
        raise ValueError(f"labels outside {classes}: gold {unknown_gold}, predicted {unknown_pred}")

    gold, pred = list(gold), list(pred)
    p, r, f, support = precision_recall_fscore_support(
        gold, pred, labels=classes, average=None, zero_division=0
    )
    macro = precision_recall_fscore_support(
        gold, pred, labels=classes, average="macro", zero_division=0
    )
    columns = [*classes, UNPARSEABLE]
    matrix = confusion_matrix(gold, pred, labels=columns)[: len(classes)]

    def binary(label: str) -> str:
        # Unparseable maps to itself so it matches neither side: always wrong.
        return label if label == UNPARSEABLE else (NORMAL if label == normal else EVENT)

    return {
        "n": len(gold),
        "accuracy": float(accuracy_score(gold, pred)),
        "correct": int(sum(g == q for g, q in zip(gold, pred))),
        "binary_accuracy": float(
            accuracy_score([binary(g) for g in gold], [binary(q) for q in pred])
        ),
        "unparseable": int(sum(q == UNPARSEABLE for q in pred)),
        "per_class": {
            c: {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(support[i]),
                "predicted": int(sum(q == c for q in pred)),
            }
            for i, c in enumerate(classes)
        },
        "macro": {"precision": float(macro[0]), "recall": float(macro[1]), "f1": float(macro[2])},
        "confusion": {"rows": classes, "columns": columns, "matrix": matrix.tolist()},
    }


def expand_confusion(
    matrix: Sequence[Sequence[int]], classes: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(gold, pred) label lists with the counts of a confusion matrix.

    Rows are gold classes; columns are the classes, optionally followed by an
    `unparseable` column. Used to check the metrics against a published table row.
    """
    columns = [*classes, UNPARSEABLE]
    gold: list[str] = []
    pred: list[str] = []
    for g, row in zip(classes, matrix):
        if len(row) not in (len(classes), len(columns)):
            raise ValueError(f"row {g!r} has {len(row)} cells; expected {len(classes)} or +1")
        for q, count in zip(columns, row):
            gold += [g] * int(count)
            pred += [q] * int(count)
    return gold, pred
