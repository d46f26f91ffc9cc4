"""Recipes are files users share: the YAML reader refuses, at load and naming the file and
key, an alias bomb (a few lines that expand to millions of values), an alias inside its
own anchor, nesting too deep to walk, and a file over the size limit. Before the limits,
the alias bomb in `engine_args` passed the dry run and the build wrote a 200 MB
provenance.json and then ran out of memory."""

from __future__ import annotations

import pytest

from vlm_autodrive.builders.core.strict import MAX_YAML_BYTES
from vlm_autodrive.cli import main

# Nine references to nine references ... of nine strings: 9**7 = 4.8 million values.
LEVELS = "abcdefg"
BOMB = "\n".join(
    f"        {x}: &{x} [" + ",".join(['"lol"'] * 9 if i == 0 else [f"*{LEVELS[i - 1]}"] * 9) + "]"
    for i, x in enumerate(LEVELS)
)
RECIPE = """\
manifest: manifest.jsonl
generate:
  models:
    m:
      model: some-org/some-model
      local_server: true
      engine_args:
{bomb}
  configs:
    caption_vlm: {{model: m}}
"""


def run(capsys, *args) -> str:
    capsys.readouterr()
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("autodrive: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "build"])
def test_an_alias_bomb_in_engine_args_is_refused_at_load_naming_the_key(tmp_path, capsys, dry_run):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.format(bomb=BOMB))
    err = run(capsys, "build", recipe, *(["--dry-run"] if dry_run else []))
    assert err.startswith(
        f"autodrive: {recipe}: generate.models.m.engine_args: holds 6,053,444 values once "
        "YAML aliases (*name) are expanded; a config holds at most 100,000"
    )
    assert list(tmp_path.iterdir()) == [recipe]  # no build folder, no provenance.json


def test_the_same_limits_hold_for_every_config_and_for_set(tmp_path, capsys):
    mixture = tmp_path / "mix.yaml"
    mixture.write_text("name: x\nsplits:\n" + BOMB.replace("        ", "  "))
    err = run(capsys, "mix", mixture, "--build", tmp_path / "b")
    assert f"autodrive: {mixture}: splits: holds " in err
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("manifest: manifest.jsonl\n")
    err = run(capsys, "build", recipe, "--dry-run", "--set", "chunk.window=&a [*a]")
    assert "a YAML alias inside its own anchor: it holds itself" in err


@pytest.mark.parametrize(
    "text, words",
    [
        ("manifest: m.jsonl\nrules: &s {templates: *s}\n", "rules.templates: a YAML alias"),
        ("manifest: m.jsonl\nx: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("manifest: m.jsonl\n" + "#" * MAX_YAML_BYTES + "\n", "bytes of YAML"),
    ],
    ids=["self-reference", "deep", "too-big"],
)
def test_self_reference_deep_nesting_and_size(tmp_path, capsys, text, words):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    err = run(capsys, "build", recipe, "--dry-run")
    assert err.startswith(f"autodrive: {recipe}: ") and words in err
