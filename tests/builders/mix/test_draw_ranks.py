"""The ranks that draw a mixture's `count`/`fraction` rows (core/ranking.seeded_ranks, the
batch form) are `seeded_rank` row by row: the faster loop draws the rows it always drew."""

from __future__ import annotations

from vlm_autodrive.builders.core.ranking import seeded_rank, seeded_ranks
from vlm_autodrive.builders.dataset.rows import row_id


def test_seeded_ranks_equal_seeded_rank_row_by_row():
    ids = [row_id("vqa", f"clip-{i}", 2) for i in range(200)] + ["user-row", "é", "", None, 7]
    for seed in (0, 3, -1, 2**40):
        assert seeded_ranks(seed, ids).tolist() == [seeded_rank(seed, i) for i in ids]
    assert seeded_ranks(0, []).tolist() == []
