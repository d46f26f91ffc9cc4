"""95% intervals for an accuracy over rows that are clustered by source video.

In: per-row credit in [0, 1] and each row's video id. Out: (low, high), the wider of
Wilson's score interval over the rows and a percentile bootstrap that resamples whole
videos (the questions of one clip, and the clips of one video, are correlated: treating
them as independent would make the interval too narrow). Wilson keeps a few rows with
all answers right from getting a zero-width interval, which the bootstrap gives them.
Deterministic: the bootstrap's generator is seeded. `wilson_corrected` (Wilson's with
continuity correction) is the answer-letter check's interval (letters.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z95 = 1.959963984540054
BOOTSTRAP = 1000


def wilson(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion `p` of `n` trials."""
    if n == 0:
        return 0.0, 1.0
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_corrected(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval with continuity correction (Newcombe 1998, method 4):
    wider than `wilson` by about 1/(2n), so that a test of a proportion against a
    fixed share keeps its level for small `n` too, where the plain interval flags a
    uniform draw more often than its level says (6% at 10 rows and 3 letters, for 5%)."""
    if n == 0:
        return 0.0, 1.0
    denom = 2 * (n + z * z)
    low = high = 0.0
    if p > 0:
        root = z * math.sqrt(z * z - 2 - 1 / n + 4 * p * (n * (1 - p) + 1))
        low = max(0.0, (2 * n * p + z * z - 1 - root) / denom)
    if p < 1:
        root = z * math.sqrt(z * z + 2 - 1 / n + 4 * p * (n * (1 - p) - 1))
        high = min(1.0, (2 * n * p + z * z + 1 + root) / denom)
    else:
        high = 1.0
    return low, high


def z_for(level: float) -> float:
    """The two-sided normal quantile of a confidence level (0.95 -> 1.96)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2)


def cluster_bootstrap(
    credits: np.ndarray,
    clusters: Sequence[str],
    seed: int = 0,
    resamples: int = BOOTSTRAP,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of the mean credit at `level`, resampling clusters with
    replacement."""
    ids = {c: k for k, c in enumerate(dict.fromkeys(clusters))}
    index = np.fromiter((ids[c] for c in clusters), dtype=np.int64, count=len(clusters))
    sums = np.bincount(index, weights=credits, minlength=len(ids))
    counts = np.bincount(index, minlength=len(ids)).astype(float)
    rng = np.random.default_rng(seed)
    batch = max(1, 4_000_000 // max(1, len(ids)))  # memory: batch x clusters indices
    means = []
    for lo in range(0, resamples, batch):
        draws = rng.integers(0, len(ids), size=(min(batch, resamples - lo), len(ids)))
        means.append(sums[draws].sum(axis=1) / counts[draws].sum(axis=1))
    means = np.concatenate(means)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def interval(
    credits: np.ndarray, clusters: Sequence[str], seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """The wider of Wilson's and the clustered bootstrap's intervals at `level` (see the
    module)."""
    if len(credits) == 0:
        return 0.0, 1.0
    w = wilson(float(np.mean(credits)), len(credits), z_for(level))
    b = cluster_bootstrap(np.asarray(credits, dtype=float), clusters, seed, level=level)
    return round(min(w[0], b[0]), 6), round(max(w[1], b[1]), 6)
