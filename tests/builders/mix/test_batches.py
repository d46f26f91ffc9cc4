"""The mixer's second pass (builders/mix/batches.component_batches) against a reference
written row by row: every copy of every source row, in order, with its id, content hash
and messages, whatever the copies of a record batch are (none, each row once, which
takes no copy of the columns, or a mix of 0, 1 and 2 copies that adds up to the
batch's size, which must not be taken for "each row once")."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.builders.mix.test_mix_bytes import without_target_and_hash
from tests.builders.small_builds import small_build
from vlm_autodrive.builders.core.files import text_sha256
from vlm_autodrive.builders.dataset.folder import data_path
from vlm_autodrive.builders.dataset.rows import content_hash
from vlm_autodrive.builders.mix import batches
from vlm_autodrive.builders.mix.batches import ComponentPlan, component_batches
from vlm_autodrive.builders.mix.conversations import row_messages
from vlm_autodrive.builders.mix.ids import mixture_content_hash, mixture_row_id
from vlm_autodrive.builders.mix.recipe import Component

SIZES = {"reasoning_vqa": {"Collision": 4, "Near-Collision": 5, "Normal Driving": 9}}
# BATCH_ROWS 6: batch 0 each row once, batch 1 no row, batch 2 sums to 6 with 0s and 2s
COPIES = [1] * 6 + [0] * 6 + [2, 0, 1, 2, 0, 1]


def reference(rows: list[dict], copies: list[int], config: str, plan: ComponentPlan) -> list:
    fmt_key = f"{plan.system_name}:{text_sha256(plan.system or '')}:{plan.reasoning}"
    out = []
    for row, n in zip(rows, copies):
        source_hash = row.get("content_hash") or content_hash(row["question"], row["answer"])
        for c in range(n):
            out.append(
                {
                    "id": mixture_row_id(config, row["id"], c),
                    "source_id": row["id"],
                    "source_config": plan.component.config,
                    "copy": c,
                    "clip_id": row["clip_id"],
                    "video_id": row["video_id"],
                    "label": row["label"],
                    "split": plan.side,
                    "video": row["video"],
                    "content_hash": mixture_content_hash(source_hash, fmt_key),
                    "messages": row_messages(row, plan.system, plan.reasoning),
                }
            )
    return out


@pytest.mark.parametrize("hashed", [True, False], ids=["content_hash", "question+answer"])
def test_component_batches_equal_the_rows_made_one_by_one(tmp_path, monkeypatch, hashed):
    monkeypatch.setattr(batches, "BATCH_ROWS", 6)
    build = small_build(tmp_path, SIZES)
    if not hashed:
        without_target_and_hash(build, "reasoning_vqa")
    path = data_path(build, "reasoning_vqa", "train")
    rows = pq.read_table(path).to_pylist()
    assert len(rows) == len(COPIES)
    plan = ComponentPlan(
        index=0, component=Component(config="reasoning_vqa", all=True), side="train",
        path=path, copies=np.array(COPIES, np.int32),
        labels=np.array([r["label"] for r in rows], object),
        system="SYS", system_name="sys", reasoning=True,
    )  # fmt: skip
    made = list(component_batches(plan, "mix-t"))
    assert [b.num_rows for b, _ in made] == [6, 6]  # the batch with no row left out
    got = [r for b, _ in made for r in b.to_pylist()]
    assert got == reference(rows, COPIES, "mix-t", plan)
    for b, values in made:  # the id values returned are the ids written
        assert [f"{v:016x}" for v in values.tolist()] == b.column("id").to_pylist()
