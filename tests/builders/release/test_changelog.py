"""The changelog: by stable id, per config; after a template edit it names exactly the
rows whose text changed (the regeneration story, end to end on a local target)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from tests.builders.small_builds import read, recipe, rule_build
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.dataset.folder import data_path, write_data_file
from vlm_autodrive.builders.mix.stage import mix
from vlm_autodrive.builders.release.changelog import Changelog, compare
from vlm_autodrive.builders.release.publish import publish
from vlm_autodrive.builders.rules.stage import RuleSplitsConfig, build_rule_splits
from vlm_autodrive.resources import bundled


def _write(folder, config, rows, split="train", hashes=True):
    """A data file named by its content, as a build writes it (no provenance.json: the
    changelog finds it in the folder)."""
    cols = {"id": [r[0] for r in rows]}
    if hashes:
        cols["content_hash"] = [r[1] for r in rows]
    write_data_file(folder, config, split, pa.table(cols))


def test_added_removed_changed_and_side_moves(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    _write(old, "mcq", [("a", "1"), ("b", "1"), ("c", "1")])
    _write(old, "mcq", [("t", "1")], "test")
    _write(new, "mcq", [("a", "1"), ("b", "2"), ("d", "1"), ("t", "1")])  # t moved to train
    _write(old, "failures", [("f1", None), ("f2", None)], hashes=False)
    _write(new, "failures", [("f2", None), ("f3", None)], hashes=False)
    _write(new, "vqa", [("q", "1")])
    log = compare(new, old, "0.2.0", "0.1.0")
    m = log.configs["mcq"]
    assert (m.added, m.removed, m.changed, m.unchanged) == (["d"], ["c"], ["b", "t"], 1)
    f = log.configs["failures"]
    assert (f.added, f.removed, f.changed, f.by_content) == (["f3"], ["f1"], [], False)
    assert log.configs["vqa"].added == ["q"]
    text = log.to_markdown()
    assert "| `mcq` | 1 | 1 | 2 | 1 |" in text and "`failures` (by id only)" in text
    assert Changelog.from_dict(json.loads(json.dumps(log.to_dict()))) == log
    first = compare(new, None, "0.1.0", None)
    assert first.configs["mcq"].added == ["a", "b", "d", "t"]
    assert "First release" in first.to_markdown()


def test_a_template_edit_changes_exactly_the_rows_it_touches(tmp_path):
    """Edit mcq.jinja so only Collision answers read differently, rebuild, re-mix,
    publish 0.2.0 next to 0.1.0: the changelog names exactly those rows."""
    build, pub = tmp_path / "build", tmp_path / "pub"
    rule_build(build)
    mixture = recipe(
        tmp_path, "components:\n  - config: mcq\n    upsample: {Collision: 2}\n", "m.yaml"
    )
    mix(mixture, build)
    publish(build, "0.1.0", to=pub)
    before = {r["id"]: r for r in read(build, "mcq").to_pylist()}

    edited = tmp_path / "templates"
    edited.mkdir()
    text = bundled("templates", "mcq.jinja").read_text()
    old = "{{ answer.letter }}. {{ answer.name }}"
    assert old in text
    new = old + '{% if answer.name == "Collision" %} (contact){% endif %}'
    (edited / "mcq.jinja").write_text(text.replace(old, new))
    rule_build(build, templates=edited)
    mix(mixture, build)
    res = publish(build, "0.2.0", to=pub)

    log = json.loads((pub / "v0.2.0" / "changelog.json").read_text())
    assert log["previous"] == "0.1.0" and log["version"] == "0.2.0"
    collision = sorted(
        i for split in ("train", "test") for i, lab in
        zip(*[read(build, "mcq", split).column(c).to_pylist() for c in ("id", "label")])
        if lab == "Collision"
    )  # fmt: skip
    assert collision
    mcq = log["configs"]["mcq"]
    assert (mcq["changed"], mcq["added"], mcq["removed"]) == (collision, [], [])
    assert mcq["unchanged"] == sum(
        pq.ParquetFile(data_path(build, "mcq", s)).metadata.num_rows for s in ("train", "test")
    ) - len(collision)
    cap = log["configs"]["caption_metadata"]
    assert (cap["changed"], cap["added"], cap["removed"]) == ([], [], [])
    # the mixture's rows made from those rows changed too, copies included, nothing else
    mixed = read(build, "mix-m").to_pylist()
    assert log["configs"]["mix-m"]["changed"] == sorted(
        r["id"] for r in mixed if r["source_id"] in set(collision)
    )
    assert all(before[i]["answer"] + " (contact)" == r["answer"]
               for i, r in {r["id"]: r for r in read(build, "mcq").to_pylist()}.items()
               if i in set(collision) and i in before)  # fmt: skip
    card = (pub / "v0.2.0" / "README.md").read_text()
    assert "Changes of 0.2.0 against 0.1.0" in card
    assert f"| `mcq` | 0 | 0 | {len(collision)} |" in card
    assert res.changelog.configs["mcq"].changed == collision


def test_a_release_of_unchanged_content_is_unchanged_whatever_the_files_are_named(tmp_path):
    """A forced rebuild with nothing changed gives the same content-named files, and a
    release of it is all unchanged; so is one against a release whose files have the
    older fixed names (`<split>-00000-of-00001.parquet`), found through its provenance."""
    build, pub = tmp_path / "build", tmp_path / "pub"
    rule_build(build)
    mixture = recipe(tmp_path, "components:\n  - config: mcq\n    all: true\n", "m.yaml")
    mix(mixture, build)
    publish(build, "0.1.0", to=pub)
    names = {c: data_path(build, c, "train").name for c in ("mcq", "caption_metadata", "mix-m")}
    build_rule_splits(build, RuleSplitsConfig(test_per_class=2), load_taxonomy(), {}, force=True)
    mix(mixture, build, force=True)
    assert {c: data_path(build, c, "train").name for c in names} == names
    # v0.1.0 as an older toolkit named its files.
    old = pub / "v0.1.0"
    prov = json.loads((old / "provenance.json").read_text())
    for config, entry in prov["configs"].items():
        for split, info in entry["splits"].items():
            fixed = f"data/{config}/{split}-00000-of-00001.parquet"
            (old / info["path"]).rename(old / fixed)
            info["path"] = fixed
    (old / "provenance.json").write_text(json.dumps(prov))
    publish(build, "0.1.1", to=pub)
    log = json.loads((pub / "v0.1.1" / "changelog.json").read_text())
    assert log["previous"] == "0.1.0"
    for config, c in log["configs"].items():
        assert (c["added"], c["removed"], c["changed"]) == ([], [], []), config
        assert c["unchanged"] > 0, config
