"""Absurd sample sizes are refused with the setting and its range, by the command line,
by a recipe's `sample:` section and by `generate_sample` itself, before anything is
drawn (`--width 100000` had numpy ask for 37 GiB)."""

from __future__ import annotations

import pytest
import yaml

from vlm_autodrive.builders.synthetic.sample import generate_sample
from vlm_autodrive.cli import main

ABSURD = [
    ("width", "100000", "100000 is out of range: from 16 to 3,840"),
    ("height", "100000", "100000 is out of range: from 16 to 2,160"),
    ("width", "95", "95 is odd: frame sides must be even numbers"),
    ("videos", "10000000", "10000000 is out of range: from 1 to 100,000"),
    ("duration", "1e9", "1e+09 is out of range: from 2 to 3,600"),
    ("fps", "100000", "100000 is out of range: from 1 to 120"),
    ("fps", "0", "0 is out of range: from 1 to 120"),
    ("gop", "0", "0 is out of range: from 1 to 10,000"),
    ("seed", "-1", "-1 is out of range: from 0"),
]


@pytest.mark.parametrize("name, value, words", ABSURD, ids=[f"{n}={v}" for n, v, _ in ABSURD])
def test_the_sample_command_refuses_absurd_sizes(tmp_path, capsys, name, value, words):
    code = main(["sample", "--out", str(tmp_path / "s"), f"--{name}", value])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"autodrive: command line: --{name}: {words}"), err
    assert not (tmp_path / "s").exists()


def test_a_recipe_sample_section_is_held_to_the_same_bounds(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    data = {"manifest": "s/manifest.jsonl", "build_dir": "b", "sample": {"width": 100000}}
    recipe.write_text(yaml.safe_dump(data))
    assert main(["build", str(recipe), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"autodrive: {recipe}: sample.width: 100000 is out of range"), err


def test_generate_sample_checks_them_itself(tmp_path):
    with pytest.raises(ValueError, match=r"sample width: 100000 is out of range: from 16 to 3,840"):
        generate_sample(tmp_path, 1, width=100000)
    with pytest.raises(ValueError, match="sample videos: 0 is out of range"):
        generate_sample(tmp_path, 0)
    assert not (tmp_path / "videos").exists()
