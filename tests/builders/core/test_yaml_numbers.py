"""Numbers in recipes read as YAML 1.2 reads them: `1e-5` is a float, not the text "1e-5"
(PyYAML's YAML 1.1 rule wants a dot), so a learning rate written that way reaches the
trainer as a number."""

from __future__ import annotations

from vlm_autodrive.builders.core.strict import load_yaml


def test_exponent_floats_without_a_dot_are_numbers():
    data = load_yaml("a: 1e-5\nb: 2E3\nc: -3.5e+2\nd: 1.0e-5\ne: 1_000\n", "r.yaml")
    assert data == {"a": 1e-5, "b": 2000.0, "c": -350.0, "d": 1e-5, "e": 1000}
    assert all(isinstance(data[k], float) for k in "abcd")


def test_words_that_only_look_numeric_stay_text():
    data = load_yaml("a: e5\nb: 1e\nc: v1e5\nd: '1e-5'\n", "r.yaml")
    assert data == {"a": "e5", "b": "1e", "c": "v1e5", "d": "1e-5"}
