"""How sure an evaluation is: bootstrap intervals clustered by source video, paired
differences between two runs, and McNemar's exact test.

In: per-clip gold labels, predictions (class names or `unparseable`) and the source
video of each clip, the class list and the normal class. Out: plain dicts (JSON-ready).

Clips cut from one video are not independent (same road, weather, driver, often the same
event seen twice), so the resampling unit is the video: each of `resamples` bootstrap
samples draws as many videos as there are, with replacement, and takes every clip of each
drawn video. Intervals are percentile intervals at `level`. The draws come from
`numpy.random.default_rng(seed)` over the videos in sorted order: the same predictions
give the same intervals, byte for byte.

Every metric is computed from the resample's confusion matrix exactly as
`metrics.compute_metrics` does from the whole one (a class never predicted has precision
0); a class with no clip in a resample has no recall or F1 there, and that resample is
left out of that metric's interval (and of the macro averages' class mean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from vlm_autodrive.builders.core.answers import UNPARSEABLE

RESAMPLES, SEED, LEVEL = 2000, 0, 0.95
_BLOCK = 250  # resamples drawn at once (bounds the memory with many videos)


def _cluster_confusions(gold, pred, clusters, classes):
    """(sorted cluster ids, an array [cluster, gold class, predicted class or unparseable])."""
    import numpy as np

    columns = [*classes, UNPARSEABLE]
    ids = sorted(set(clusters))
    at = {c: i for i, c in enumerate(ids)}
    m = np.zeros((len(ids), len(classes), len(columns)), dtype=np.int64)
    for g, p, c in zip(gold, pred, clusters):
        m[at[c], classes.index(g), columns.index(p)] += 1
    return ids, m


def _metrics(conf, classes, normal):
    """Metric arrays of a stack of confusion matrices [..., gold, predicted]."""
    import numpy as np

    k = len(classes)
    z = classes.index(normal)
    n = conf.sum(axis=(-2, -1))
    diag = np.stack([conf[..., i, i] for i in range(k)], axis=-1)
    support = conf.sum(axis=-1)  # per gold class, unparseable included
    predicted = conf[..., :, :k].sum(axis=-2)
    events = [i for i in range(k) if i != z]
    binary = conf[..., z, z] + sum(conf[..., g, :k][..., events].sum(axis=-1) for g in events)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, diag / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, diag / np.maximum(support, 1), np.nan)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
        f1 = np.where(np.isnan(recall), np.nan, f1)
        out = {
            "accuracy": diag.sum(axis=-1) / n,
            "binary_accuracy": binary / n,
            "macro.precision": precision.mean(axis=-1),
            "macro.recall": np.nanmean(recall, axis=-1),
            "macro.f1": np.nanmean(f1, axis=-1),
        }
    for i, c in enumerate(classes):
        out[f"{c}.precision"] = precision[..., i]
        out[f"{c}.recall"] = recall[..., i]
        out[f"{c}.f1"] = f1[..., i]
    return out


def _draws(n_clusters: int, resamples: int, seed: int):
    """Blocks of video counts [resample, video]: how often each video is drawn."""
    import numpy as np

    rng = np.random.default_rng(seed)
    p = np.full(n_clusters, 1.0 / n_clusters)
    left = resamples
    while left:
        size = min(_BLOCK, left)
        yield rng.multinomial(n_clusters, p, size=size)
        left -= size


def _interval(values, level: float) -> list[float] | None:
    import numpy as np

    values = values[~np.isnan(values)]
    if not len(values):
        return None
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return [round(float(lo), 6), round(float(hi), 6)]


def _nest(flat: dict[str, Any], classes: Sequence[str]) -> dict[str, Any]:
    """{"accuracy": .., "binary_accuracy": .., "macro": {..}, "per_class": {c: {..}}}."""
    out: dict[str, Any] = {"macro": {}, "per_class": {c: {} for c in classes}}
    for key, value in flat.items():
        head, _, metric = key.rpartition(".")
        if not head:
            out[key] = value
        elif head == "macro":
            out["macro"][metric] = value
        else:
            out["per_class"][head][metric] = value
    return out


def _settings(ids, resamples, seed, level, cluster_by) -> dict[str, Any]:
    return {
        "method": "percentile bootstrap, resampling source videos (all clips of a video together)",
        "cluster": cluster_by,
        "clusters": len(ids),
        "resamples": resamples,
        "seed": seed,
        "level": level,
    }


def bootstrap_intervals(
    gold: Sequence[str],
    pred: Sequence[str],
    clusters: Sequence[str],
    classes: Sequence[str],
    normal: str,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
    cluster_by: str = "video_id",
) -> dict[str, Any]:
    """Intervals of every metric `compute_metrics` reports, laid out like its dict
    (`accuracy`, `binary_accuracy`, `macro.{precision,recall,f1}`, `per_class.C.*`), each
    `[low, high]` (None when no resample defines it), and `bootstrap` (the settings)."""
    import numpy as np

    classes = list(classes)
    if not (len(gold) == len(pred) == len(clusters)) or not gold:
        raise ValueError(f"{len(gold)} gold, {len(pred)} predictions, {len(clusters)} clusters")
    ids, per_cluster = _cluster_confusions(gold, pred, clusters, classes)
    flat = per_cluster.reshape(len(ids), -1)
    chunks: dict[str, list] = {}
    for w in _draws(len(ids), resamples, seed):
        conf = (w @ flat).reshape(len(w), *per_cluster.shape[1:])
        for key, v in _metrics(conf, classes, normal).items():
            chunks.setdefault(key, []).append(v)
    intervals = {k: _interval(np.concatenate(v), level) for k, v in chunks.items()}
    return {
        **_nest(intervals, classes),
        "bootstrap": _settings(ids, resamples, seed, level, cluster_by),
    }


def paired_difference(
    gold: Sequence[str],
    pred_a: Sequence[str],
    pred_b: Sequence[str],
    clusters: Sequence[str],
    classes: Sequence[str],
    normal: str,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
    cluster_by: str = "video_id",
) -> dict[str, Any]:
    """B minus A on the same clips, per metric: `{"a", "b", "difference", "interval"}`
    (the interval from the same video resamples for both, so what the clips share
    cancels), keyed like `bootstrap_intervals`; `mcnemar` on accuracy; `bootstrap`."""
    import numpy as np

    classes = list(classes)
    if not (len(gold) == len(pred_a) == len(pred_b) == len(clusters)) or not gold:
        raise ValueError("paired predictions need the same clips, in the same order")
    ids, conf_a = _cluster_confusions(gold, pred_a, clusters, classes)
    _, conf_b = _cluster_confusions(gold, pred_b, clusters, classes)
    whole_a = _metrics(conf_a.sum(axis=0), classes, normal)
    whole_b = _metrics(conf_b.sum(axis=0), classes, normal)
    fa, fb = conf_a.reshape(len(ids), -1), conf_b.reshape(len(ids), -1)
    chunks: dict[str, list] = {}
    for w in _draws(len(ids), resamples, seed):
        ma = _metrics((w @ fa).reshape(len(w), *conf_a.shape[1:]), classes, normal)
        mb = _metrics((w @ fb).reshape(len(w), *conf_b.shape[1:]), classes, normal)
        for key in ma:
            chunks.setdefault(key, []).append(mb[key] - ma[key])
    flat = {}
    for key, parts in chunks.items():
        a, b = float(whole_a[key]), float(whole_b[key])
        flat[key] = {
            "a": None if math.isnan(a) else a,
            "b": None if math.isnan(b) else b,
            "difference": None if math.isnan(b - a) else b - a,
            "interval": _interval(np.concatenate(parts), level),
        }
    only_a = sum(g == p and g != q for g, p, q in zip(gold, pred_a, pred_b))
    only_b = sum(g == q and g != p for g, p, q in zip(gold, pred_a, pred_b))
    return {
        **_nest(flat, classes),
        "mcnemar": {
            "only_a_correct": only_a,
            "only_b_correct": only_b,
            "p_value": mcnemar_exact(only_a, only_b),
        },
        "clips": len(gold),
        "bootstrap": _settings(ids, resamples, seed, level, cluster_by),
    }


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts `b` (only A right) and
    `c` (only B right): a binomial test of min(b, c) out of b + c at one half."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)
