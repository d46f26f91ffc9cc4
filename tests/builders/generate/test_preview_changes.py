"""The dry run's count of rule rows that would change (builders/generate/preview.py):
added, removed and changed rows, equal to what the run then changes."""

from __future__ import annotations

from types import SimpleNamespace

import pyarrow as pa

from tests.builders.small_builds import relabel_one_video, rule_build
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.generate.inputs import read_config_table
from vlm_autodrive.builders.generate.preview import changed_rows, preview_rules
from vlm_autodrive.builders.rules.stage import RuleSplitsConfig, build_rule_splits


def table(rows: dict[str, str]) -> pa.Table:
    ids, hashes = pa.array(list(rows), pa.string()), pa.array(list(rows.values()), pa.string())
    return pa.table({"id": ids, "content_hash": hashes})


def test_changed_rows_counts_added_removed_and_changed():
    old = table({"a": "1", "b": "2", "c": "3"})
    assert changed_rows(old, table({"a": "1", "b": "9", "d": "4"})) == 3  # b, c, d
    assert changed_rows(old, old) == 0
    assert changed_rows(table({}), old) == 3


def by_id(build, name) -> dict[str, str]:
    t = read_config_table(build, name, ["id", "content_hash"])
    return dict(zip(t["id"].to_pylist(), t["content_hash"].to_pylist(), strict=True))


def test_the_dry_run_counts_the_rule_rows_the_run_changes(tmp_path):
    build = rule_build(tmp_path / "build", videos=30)
    config = RuleSplitsConfig(test_per_class=2)
    configs = ("mcq", "caption_metadata", "cause_vqa")
    before = {n: by_id(build, n) for n in configs}
    relabel_one_video(build)
    plan = preview_rules(build, SimpleNamespace(rules=config), load_taxonomy())
    build_rule_splits(build, config, load_taxonomy(), {})
    after = {n: by_id(build, n) for n in configs}
    for name, predicted in plan.rule_changes.items():
        old, new = before[name], after[name]
        changed = sum(1 for i in old.keys() | new.keys() if old.get(i) != new.get(i))
        assert predicted == changed, name
    assert plan.rule_changes["mcq"] > 0
