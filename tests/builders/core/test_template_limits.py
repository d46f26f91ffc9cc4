"""A shared template cannot take the machine's memory or time: the sandbox refuses
operators whose result would be huge, loops past a budget of iterations per render, and
a render past a size, as a TemplateLoadError naming the template's file and line (exit 2
as every bad input). A QA's `{{ 'x' * 10000000000 }}` tried to allocate 10 GB while the
template compiled (only `ulimit` stopped it) and nested `range(100000)` loops ran until
killed. Every case here is refused in well under a second."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vlm_autodrive.builders.core import sandbox
from vlm_autodrive.builders.core.jinja_env import TemplateLoadError, load_template


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


NS = "{% set ns = namespace(s='x') %}"


@pytest.mark.parametrize(
    "line, words",
    [
        ("{{ 'x' * 10000000000 }}", "would hold 10,000,000,000 characters, over the sandbox's"),
        ("{{ 10000000000 * 'x' }}", "would hold 10,000,000,000 characters"),
        ("{{ ([1] * 1000000)|length }}", "would hold 1,000,000 items, over the sandbox's 100,000"),
        ("{{ 2 ** 100000000 }}", "a number of about 100,000,000 bits"),
        ("{{ 10 ** (10 ** 10) }}", "bits, over the sandbox's"),
        (NS + "{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "characters"),
        (NS + "{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "characters"),
        ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
         "over the sandbox's 1,000,000 loop iterations in one render"),
        ("{{ ([('x' * 1000)] * 10000)|join }}", "would hold 10,000,000 characters"),
        ("{{ 'x'|center(10000000000) }}", "would hold 10,000,000,000 characters"),
    ],
)  # fmt: skip
def test_a_costly_expression_is_refused_at_load_naming_file_and_line(tmp_path, line, words):
    write(tmp_path, "t.jinja", "{{ question }}\n" + line + "\n")
    started = time.monotonic()
    with pytest.raises(TemplateLoadError) as e:
        load_template("t.jinja", [tmp_path], ["question"], samples=[{"question": "Q"}])
    assert time.monotonic() - started < 5
    assert str(e.value).startswith(f"{tmp_path / 't.jinja'}:2: SecurityError: ")
    assert words in str(e.value)


def test_loops_in_included_templates_share_the_renders_budget(tmp_path):
    write(
        tmp_path, "t.jinja", "{% for i in range(100000) %}{% include 'inner.jinja' %}{% endfor %}"
    )
    write(tmp_path, "inner.jinja", "{% for j in range(100) %}{% endfor %}")
    with pytest.raises(TemplateLoadError, match="1,000,000 loop iterations in one render"):
        load_template("t.jinja", [tmp_path], [], samples=[{}])


def test_a_recursive_loop_counts_its_inner_calls(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "MAX_ITERATIONS", 10_000)  # a recursive loop is slower
    text = (
        "{% for x in [1] recursive %}{% if loop.depth < 4 %}"
        "{{ loop(range(100000)) }}{% endif %}{% endfor %}"
    )
    write(tmp_path, "t.jinja", text)
    with pytest.raises(TemplateLoadError, match="10,000 loop iterations"):
        load_template("t.jinja", [tmp_path], [], samples=[{}])


def test_an_output_past_the_size_bound_names_the_template(tmp_path):
    # Literal text in a loop: no `{{ }}` prints it; the output as a whole is bounded.
    path = write(
        tmp_path, "t.jinja", "{% for i in range(100000) %}twenty characters...{% endfor %}"
    )
    with pytest.raises(TemplateLoadError) as e:
        load_template("t.jinja", [tmp_path], [], samples=[{}])
    assert str(e.value).startswith(f"{path}: SecurityError: renders over the sandbox's 1,000,000")


def test_what_buffered_blocks_print_is_counted_as_it_prints(tmp_path):
    # Inside `{% filter %}` the output is joined only at the end: counted per `{{ }}`.
    text = "{% filter upper %}{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}{% endfilter %}"
    write(tmp_path, "t.jinja", text)
    with pytest.raises(TemplateLoadError) as e:
        load_template("t.jinja", [tmp_path], [], samples=[{}])
    assert str(e.value).startswith(f"{tmp_path / 't.jinja'}:1: SecurityError: prints over")


def test_what_a_row_makes_too_big_is_refused_as_it_renders(tmp_path):
    # The sample renders; a row's own value makes the result too big.
    write(tmp_path, "t.jinja", "{% block user %}\n{{ 'ab' * n }}{% endblock %}")
    t = load_template("t.jinja", [tmp_path], ["n"], samples=[{"n": 3}], blocks=["user"])
    assert t.render_block("user", {"n": 3}) == "ababab"
    for render in (lambda c: t.render_block("user", c), t.render):
        with pytest.raises(TemplateLoadError) as e:
            render({"n": 10**12})
        assert str(e.value).startswith(f"{tmp_path / 't.jinja'}:2: SecurityError: ")


def test_ordinary_operators_and_loops_still_work(tmp_path):
    text = (
        "{{ 'ab' * 3 }}|{{ 3 * 'c' }}|{{ ([1, 2] + [3])|join(',') }}|{{ 2 ** 10 }}|"
        "{{ 6 * 7 }}|{{ 1.5 * 2 }}|{{ 'a' ~ 1 ~ 'b' }}|{{ 'x'|center(5) }}|"
        "{% for x in items %}{{ loop.index }}/{{ loop.length }}{{ '' if loop.last else ' ' }}"
        "{% endfor %}|{% for a, b in pairs.items() %}{{ a }}={{ b }}{% endfor %}|"
        "{% for x in tree recursive %}{{ x.n }}{{ loop(x.kids) }}{% endfor %}"
    )
    write(tmp_path, "t.jinja", text)
    sample = {
        "items": ["a", "b"],
        "pairs": {"k": "v"},
        "tree": [{"n": 1, "kids": [{"n": 2, "kids": []}]}],
    }
    t = load_template("t.jinja", [tmp_path], list(sample), samples=[sample])
    assert t.render(sample) == "ababab|ccc|1,2,3|1024|42|3.0|a1b|  x  |1/2 2/2|k=v|12"
