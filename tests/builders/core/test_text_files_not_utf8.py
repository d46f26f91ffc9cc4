"""A user's text file that is not UTF-8 is refused naming the file and the line of the
first bad byte (exit 2 as every bad input): a template found through the template loader
(`--set rules.templates=DIR`, a recipe's prompts folder), a mixture's system prompt, the
fact checks' word and phrase lists. A QA's copied `mcq.jinja` with one 0xff byte gave
`'utf-8' codec can't decode byte 0xff in position 462`, naming no file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vlm_autodrive.builders.core.jinja_env import TemplateLoadError, load_template
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.generate.facts import load_lexicon
from vlm_autodrive.builders.mix.conversations import load_system_prompt
from vlm_autodrive.builders.rules.mcq import load_mcq_template
from vlm_autodrive.resources import bundled


def spoil(path: Path, line: int) -> None:
    """Put one 0xff byte at the start of `line` (1-based) of `path`."""
    lines = path.read_bytes().split(b"\n")
    lines[line - 1] = b"\xff" + lines[line - 1]
    path.write_bytes(b"\n".join(lines))


def test_a_copied_rule_template_with_a_bad_byte_names_file_and_line(tmp_path):
    folder = tmp_path / "mine"
    shutil.copytree(bundled("templates"), folder)
    spoil(folder / "mcq.jinja", 7)
    with pytest.raises(TemplateLoadError) as e:
        load_mcq_template(load_taxonomy(), [folder, bundled("templates")])
    assert str(e.value) == f"{folder / 'mcq.jinja'}:7: not UTF-8 text (byte 0xff)"


def test_an_included_template_with_a_bad_byte_names_that_file(tmp_path):
    (tmp_path / "outer.jinja").write_text("{% include 'inner.jinja' %}\n")
    (tmp_path / "inner.jinja").write_bytes(b"one\ntwo \xfe\n")
    with pytest.raises(TemplateLoadError) as e:
        load_template("outer.jinja", [tmp_path], inputs=[])
    assert str(e.value) == f"{tmp_path / 'inner.jinja'}:2: not UTF-8 text (byte 0xfe)"


def test_a_system_prompt_with_a_bad_byte_names_file_and_line(tmp_path):
    (tmp_path / "sp.txt").write_bytes(b"You label dashcam clips.\nBe brief \xff.\n")
    with pytest.raises(ValueError) as e:
        load_system_prompt("sp.txt", tmp_path)
    assert str(e.value) == f"{tmp_path / 'sp.txt'}: line 2: not UTF-8 text (byte 0xff)"


@pytest.mark.parametrize("name", ["fact_words.yaml", "text_leaks.txt", "revision_leaks.txt"])
def test_a_word_list_with_a_bad_byte_names_file_and_line(tmp_path, name):
    checks = tmp_path / "checks"
    shutil.copytree(bundled("prompts", "checks"), checks)
    spoil(checks / name, 3)
    with pytest.raises(ValueError) as e:
        load_lexicon([tmp_path, bundled("prompts")], load_taxonomy())
    assert str(e.value) == f"{checks / name}: line 3: not UTF-8 text (byte 0xff)"
