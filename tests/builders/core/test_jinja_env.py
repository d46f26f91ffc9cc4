"""The one Jinja environment: broken templates fail at load, naming the file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vlm_autodrive.builders.core.jinja_env import TemplateLoadError, load_template
from vlm_autodrive.builders.core.taxonomy import Taxonomy, load_taxonomy
from vlm_autodrive.builders.rules.captions import load_caption_template
from vlm_autodrive.resources import bundled


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_unknown_variable_fails_at_load_with_template_name_and_line(tmp_path):
    write(tmp_path, "t.jinja", "It is {{ weather }}.\nThe road is {{ raod }}.\n")
    with pytest.raises(TemplateLoadError) as e:
        load_template("t.jinja", [tmp_path], inputs=["weather", "road"])
    msg = str(e.value)
    assert "t.jinja:2" in msg and "raod" in msg and "weather" in msg


def test_unknown_variable_in_an_untaken_branch_fails_too(tmp_path):
    # Static analysis covers branches the samples never reach.
    write(tmp_path, "t.jinja", "{% if weather %}{{ weather }}{% else %}{{ wether }}{% endif %}")
    with pytest.raises(TemplateLoadError, match="wether"):
        load_template("t.jinja", [tmp_path], inputs=["weather"], samples=[{"weather": "rain"}])


def test_unknown_variable_in_an_included_template_names_that_file(tmp_path):
    write(tmp_path, "outer.jinja", "{% for a in items %}{% include 'inner.jinja' %}{% endfor %}")
    write(tmp_path, "inner.jinja", "{{ a }} {{ itme }}")
    with pytest.raises(TemplateLoadError) as e:
        load_template("outer.jinja", [tmp_path], inputs=["items"])
    assert "inner.jinja" in str(e.value) and "itme" in str(e.value)


def test_misspelt_attribute_fails_when_rendering_the_samples(tmp_path):
    write(tmp_path, "t.jinja", "\n{{ ego.moton }}")
    with pytest.raises(TemplateLoadError) as e:
        load_template("t.jinja", [tmp_path], ["ego"], samples=[{"ego": {"motion": "braking"}}])
    assert "t.jinja:2" in str(e.value) and "moton" in str(e.value)


def test_syntax_error_and_unknown_filter_fail_at_load(tmp_path):
    write(tmp_path, "bad.jinja", "{% if x %}no end")
    with pytest.raises(TemplateLoadError, match=r"bad\.jinja:1"):
        load_template("bad.jinja", [tmp_path], ["x"])
    write(tmp_path, "filt.jinja", "{{ x|no_such_filter }}")
    with pytest.raises(TemplateLoadError, match="no_such_filter"):
        load_template("filt.jinja", [tmp_path], ["x"])


def test_missing_block_and_missing_template(tmp_path):
    write(tmp_path, "q.jinja", "{% block question %}Q{% endblock %}")
    with pytest.raises(TemplateLoadError, match="answer"):
        load_template("q.jinja", [tmp_path], [], blocks=["question", "answer"])
    with pytest.raises(TemplateLoadError, match=r"nope\.jinja"):
        load_template("nope.jinja", [tmp_path], [])


def test_hash_covers_included_templates_and_ref_format(tmp_path):
    write(tmp_path, "outer.jinja", "{% include 'inner.jinja' %}")
    inner = write(tmp_path, "inner.jinja", "one")
    a = load_template("outer.jinja", [tmp_path], [])
    assert a.render({}) == "one"
    assert a.ref == f"outer.jinja@{a.sha256[:12]}"
    assert a.sources == ("outer.jinja", "inner.jinja")
    other = tmp_path / "copy"
    shutil.copytree(tmp_path, other, ignore=shutil.ignore_patterns("copy"))
    write(other, "inner.jinja", "two")
    b = load_template("outer.jinja", [other], [])
    assert b.render({}) == "two" and b.sha256 != a.sha256
    assert inner.read_text() == "one"


def test_first_folder_wins_so_users_override_single_files(tmp_path):
    write(
        tmp_path,
        "mcq.jinja",
        "{% block question %}Mine{% endblock %}{% block answer %}{% endblock %}",
    )
    t = load_template("mcq.jinja", [tmp_path, bundled("templates")], [], blocks=["question"])
    assert t.render_block("question", {}) == "Mine"


def test_taxonomy_value_without_a_phrase_fails_at_load():
    # Adding a vocabulary value to the taxonomy without its phrase is caught at load.
    tax = load_taxonomy()
    vocab = {**tax.vocab, "weather": [*tax.vocab["weather"], "sleet"]}
    bigger = Taxonomy(classes=tax.classes, vocab=vocab)
    with pytest.raises(TemplateLoadError) as e:
        load_caption_template(bigger, [bundled("templates")])
    assert "captions/scene.jinja" in str(e.value) and "sleet" in str(e.value)


def test_bundled_templates_load():
    tax = load_taxonomy()
    t = load_caption_template(tax, [bundled("templates")])
    assert "captions/phrases.jinja" in t.sources
