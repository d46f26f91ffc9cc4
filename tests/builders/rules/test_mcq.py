"""The mcq split: answers agree with labels under both option policies, and `balanced`
spreads the answer over the letters."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.rules.mcq import build_mcq, load_mcq_template, option_order
from vlm_autodrive.resources import bundled

TAX = load_taxonomy()
TEMPLATE = load_mcq_template(TAX, [bundled("templates")])
LETTERS = "ABC"


def clips(n: int) -> list[dict]:
    # Label mix like the paper's: mostly Normal Driving, few Collisions.
    labels = ["Normal Driving"] * 8 + ["Near-Collision"] * 3 + ["Collision"]
    return [
        {
            "clip_id": f"v{i // 6:05d}_{i % 6:07d}",
            "video_id": f"v{i // 6:05d}",
            "path": f"clips/v{i // 6:05d}/c{i}.mp4",
            "label": labels[i % len(labels)],
        }
        for i in range(n)
    ]


def build(policy: str, n: int = 3000, seed: int = 0):
    cs = clips(n)
    sides = {c["clip_id"]: "test" if i % 10 == 0 else "train" for i, c in enumerate(cs)}
    return build_mcq(cs, sides, TAX, TEMPLATE, policy, seed)


@pytest.mark.parametrize("policy", ["fixed", "balanced"])
def test_answers_agree_with_labels(policy):
    rows, letters = build(policy)
    assert len(rows) == 3000
    for r in rows:
        pos = LETTERS.index(r.answer_letter)
        assert r.options[pos] == r.label
        assert sorted(r.options) == sorted(TAX.names)
        assert r.answer == f"{r.answer_letter}. {r.label}"
        # The question lists every option's text under its letter, in the order shown.
        for letter, name in zip(LETTERS, r.options, strict=True):
            text = next(c.mcq_option for c in TAX.classes if c.name == name)
            assert f"\n{letter}. {text}\n" in r.question
        assert r.generator == "rule:mcq" and r.template == TEMPLATE.ref
        assert r.video.startswith("clips/")
    assert sum(sum(c.values()) for c in letters.values()) == 3000
    assert set(letters) == {"train", "test"}


def test_fixed_is_the_taxonomy_order():
    rows, letters = build("fixed")
    assert all(r.options == TAX.names for r in rows)
    # With the paper's order the answer letter is the label: C for every Normal clip.
    assert all(r.answer_letter == "C" for r in rows if r.label == "Normal Driving")
    assert letters["train"]["C"] > 0.6 * sum(letters["train"].values())


def test_balanced_spreads_letters_overall_and_per_class():
    rows, letters = build("balanced")
    total = sum(letters["train"].values())
    for letter in LETTERS:
        assert 0.30 < letters["train"][letter] / total < 0.37
    for label in TAX.names:
        per = Counter(r.answer_letter for r in rows if r.label == label)
        n = sum(per.values())
        assert all(0.25 < per[k] / n < 0.42 for k in LETTERS), (label, per)


def test_option_order_is_a_seeded_uniform_permutation():
    orders = Counter(tuple(option_order("balanced", 3, 0, f"c{i}")) for i in range(6000))
    assert set(orders) == set(itertools.permutations(range(3)))
    assert min(orders.values()) > 850  # 1000 expected each
    assert option_order("balanced", 3, 0, "c1") == option_order("balanced", 3, 0, "c1")
    assert any(
        option_order("balanced", 3, 1, f"c{i}") != option_order("balanced", 3, 0, f"c{i}")
        for i in range(10)
    )
    assert option_order("fixed", 3, 5, "c1") == [0, 1, 2]


def test_ids_do_not_depend_on_policy_but_content_hash_does():
    fixed, _ = build("fixed", 60)
    bal, _ = build("balanced", 60)
    assert [r.id for r in fixed] == [r.id for r in bal]
    assert len({r.id for r in fixed}) == 60
    assert any(a.content_hash != b.content_hash for a, b in zip(fixed, bal, strict=True))


def test_clips_without_a_side_are_skipped():
    cs = clips(12)
    rows, _ = build_mcq(cs, {cs[0]["clip_id"]: "train"}, TAX, TEMPLATE, "fixed", 0)
    assert [r.clip_id for r in rows] == [cs[0]["clip_id"]]
