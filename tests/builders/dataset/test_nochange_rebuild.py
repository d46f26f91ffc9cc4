"""A rebuild with nothing changed does no work and touches nothing; an edit re-does the
configs it reaches and leaves the others' files as they were.

The stages: the rule splits (`mcq`, `caption_metadata`, the assignment, the card) and
`autodrive mix`. Before each rebuild every file of the folder is dated back to 2001, so
a file that is rewritten, even with the same bytes, shows a new modification time.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.dataset.folder import data_path
from vlm_autodrive.builders.rules.stage import RuleSplitsConfig, build_rule_splits
from vlm_autodrive.builders.synthetic.tables import write_synthetic_tables
from vlm_autodrive.cli import main
from vlm_autodrive.resources import bundled

TAX = load_taxonomy()
OLD_NS = 1_000_000_000 * 10**9  # 2001-09-09, long before any file of the test was written
MIXTURE = """\
name: {name}
seed: 0
conversation: {{system_prompt: driving_assistant}}
components:
{components}
"""
BOTH = "  - config: mcq\n    upsample: {Collision: 3}\n  - config: caption_metadata\n    all: true"
CAPTIONS_ONLY = "  - config: caption_metadata\n    fraction: 0.5"


def files(build: Path) -> dict[str, tuple[bytes, int]]:
    """path -> (bytes, mtime_ns) of every file the stages wrote (not their input tables,
    nor `.lock`, which each command takes)."""
    return {
        p.relative_to(build).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(build.rglob("*"))
        if p.is_file() and p.relative_to(build).parts[0] not in ("ingest", "chunk", ".lock")
    }


def date_back(build: Path) -> dict[str, tuple[bytes, int]]:
    for p in build.rglob("*"):
        if p.is_file():
            os.utime(p, ns=(OLD_NS, OLD_NS))
    return files(build)


def rules(build: Path, templates: Path | None = None):
    config = RuleSplitsConfig(
        test_per_class=2, on_short="take_available", templates=str(templates or "") or None
    )
    return build_rule_splits(build, config, TAX, {"manifest": "m.jsonl"})


def mix(tmp: Path, build: Path, name: str, components: str, capsys) -> str:
    recipe = tmp / f"{name}.yaml"
    recipe.write_text(MIXTURE.format(name=name, components=textwrap.indent(components, "")))
    assert main(["mix", str(recipe), "--build", str(build)]) == 0
    return capsys.readouterr().out


def test_a_second_run_says_up_to_date_and_touches_no_file(tmp_path, capsys):
    build = tmp_path / "build"
    write_synthetic_tables(build, 40, seed=4, collision_fraction=0.3)
    assert not rules(build).skipped
    assert "up to date" not in mix(tmp_path, build, "both", BOTH, capsys)
    before = date_back(build)

    again = rules(build)
    assert again.skipped and "(up to date, nothing to do)" in again.format()
    out = mix(tmp_path, build, "both", BOTH, capsys)
    assert "mixture both -> " in out and "(up to date, nothing to do)" in out
    assert files(build) == before  # bytes and modification times, card included


def test_an_edit_redoes_the_configs_it_reaches_and_no_other(tmp_path, capsys):
    build = tmp_path / "build"
    write_synthetic_tables(build, 40, seed=4, collision_fraction=0.3)
    rules(build)
    mix(tmp_path, build, "both", BOTH, capsys)
    mix(tmp_path, build, "captions", CAPTIONS_ONLY, capsys)
    before = date_back(build)
    old = {c: data_path(build, c, "train").relative_to(build).as_posix() for c in
           ("mcq", "caption_metadata", "mix-both", "mix-captions")}  # fmt: skip

    # The MCQ template changes: mcq is rewritten; caption_metadata's files stay as they were.
    mine = tmp_path / "templates"
    mine.mkdir()
    text = (bundled("templates") / "mcq.jinja").read_text()
    (mine / "mcq.jinja").write_text(text.replace("Choose one option.", "Pick one."))
    assert not rules(build, mine).skipped
    now = files(build)
    new_mcq = data_path(build, "mcq", "train").relative_to(build).as_posix()
    assert new_mcq != old["mcq"] and old["mcq"] not in now  # the old-named file is gone
    for config in ("caption_metadata", "mix-both", "mix-captions"):
        for side in ("train", "test") if config == "caption_metadata" else ("train",):
            rel = data_path(build, config, side).relative_to(build).as_posix()
            assert now[rel] == before[rel], rel  # same name, bytes and modification time
    assert now["README.md"] != before["README.md"]  # the card names mcq's new file

    # The mixture of mcq is re-done; the one of the captions alone is up to date.
    out = mix(tmp_path, build, "both", BOTH, capsys)
    assert "up to date" not in out
    assert data_path(build, "mix-both", "train").relative_to(build).as_posix() != old["mix-both"]
    out = mix(tmp_path, build, "captions", CAPTIONS_ONLY, capsys)
    assert "(up to date, nothing to do)" in out
    rel = old["mix-captions"]
    assert files(build)[rel] == before[rel]

    # Its recipe changes (another fraction): that mixture alone is re-done.
    before = date_back(build)
    out = mix(tmp_path, build, "captions", CAPTIONS_ONLY.replace("0.5", "0.25"), capsys)
    assert "up to date" not in out
    now = files(build)
    changed = {f for f in before.keys() | now.keys() if before.get(f) != now.get(f)}
    new_captions = data_path(build, "mix-captions", "train").relative_to(build).as_posix()
    assert changed == {
        rel,  # gone
        new_captions,
        "README.md",
        "provenance.json",
        "mix/captions/stamp.json",
        "mix/captions/class_distribution.png",
    }
