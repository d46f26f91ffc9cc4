"""A bad `--set KEY=VALUE` is blamed on the `--set` that gave it, not on the recipe file:
`autodrive: --set chunk.window=abc: chunk.window: ...`; the file's own mistakes still
name the file, and a section mixing both names the file with the --set. Well under 1 s.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vlm_autodrive.builders.recipe import load_recipe
from vlm_autodrive.cli import main


@pytest.fixture
def recipe(tmp_path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text("manifest: m.jsonl\nbuild_dir: build\nchunk:\n  window: 4\n")
    return path


def problem(recipe: Path, *overrides: str) -> str:
    with pytest.raises(ValueError) as e:
        load_recipe(recipe, list(overrides))
    return str(e.value)


def test_a_bad_set_value_names_the_set(recipe):
    assert problem(recipe, "chunk.window=abc") == (
        "--set chunk.window=abc: chunk.window: "
        "Input should be a valid number, unable to parse string as a number"
    )
    assert (
        problem(recipe, "nosuch.key=1")
        == "--set nosuch.key=1: nosuch: Extra inputs are not permitted"
    )
    assert problem(recipe, "chunk=3").startswith("--set chunk=3: chunk: ")
    # the last --set of a key is the one kept, and the one named
    assert problem(recipe, "chunk.window=2", "chunk.window=-1").startswith(
        "--set chunk.window=-1: chunk.window: "
    )


def test_the_files_own_mistakes_still_name_the_file(recipe, tmp_path):
    recipe.write_text("manifest: m.jsonl\nbuild_dir: build\nchunk:\n  window: x\n")
    assert problem(recipe, "chunk.stride=1").startswith(f"{recipe}: chunk.window: ")
    assert problem(recipe).startswith(f"{recipe}: chunk.window: ")
    assert load_recipe(recipe, ["chunk.window=3"]).chunk.window == 3  # --set fixes it


def test_a_check_across_a_sections_keys_names_the_file_with_the_set(recipe):
    # window 4 from the file, margin 3 from --set: margin must be at most half the window
    assert problem(recipe, "chunk.margin=3") == (
        f"{recipe} with --set chunk.margin=3: chunk: margin must be at most half the window"
    )


def test_the_command_line_says_set(recipe, capsys):
    assert main(["build", str(recipe), "--set", "chunk.window=abc", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("autodrive: --set chunk.window=abc: chunk.window: "), err
    assert "rules.yaml" not in err
