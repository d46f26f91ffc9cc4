"""Mixtures: exact upsampling, determinism, traceability, recipe errors, the Table 1 recipe."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from huggingface_hub import DatasetCard

from tests.builders.small_builds import SMALL, read, recipe, small_build
from vlm_autodrive.builders.core.files import text_sha256
from vlm_autodrive.builders.dataset.folder import data_path
from vlm_autodrive.builders.mix.conversations import load_system_prompt
from vlm_autodrive.builders.mix.ids import mixture_content_hash, mixture_row_id
from vlm_autodrive.builders.mix.recipe import MixtureError, load_mixture
from vlm_autodrive.builders.mix.stage import mix
from vlm_autodrive.builders.synthetic.configs import PAPER_SIZES
from vlm_autodrive.resources import bundled

BALANCE = """
    name: bal
    seed: 7
    components:
      - config: mcq
        upsample: {Collision: 15, Near-Collision: 2}
      - config: caption_vlm
        count: 25
      - config: caption_metadata
        fraction: 0.5
      - config: reasoning_mcq
        upsample: {"*": 2}
"""


@pytest.fixture
def build(tmp_path):
    return small_build(tmp_path)


def test_upsampling_counts_are_exact_per_class_and_copies_trace_to_sources(tmp_path, build):
    res = mix(recipe(tmp_path, BALANCE), build)
    t = read(build, "mix-bal").to_pylist()
    mcq = [r for r in t if r["source_config"] == "mcq"]
    assert Counter(r["label"] for r in mcq) == {
        "Collision": 4 * 15,
        "Near-Collision": 10 * 2,
        "Normal Driving": 50,
    }
    sources = {r["id"]: r for r in read(build, "mcq").to_pylist()}
    sha = text_sha256(load_system_prompt("driving_assistant"))
    fmt = f"driving_assistant:{sha}:False"
    copies: dict[str, list[int]] = {}
    for r in mcq:
        src = sources[r["source_id"]]  # every copy names a real source row
        assert (r["clip_id"], r["video_id"], r["label"], r["video"]) == (
            src["clip_id"], src["video_id"], src["label"], src["video"],
        )  # fmt: skip
        assert r["messages"][1]["content"][1]["text"] == src["question"]
        assert r["messages"][-1]["content"][0]["text"] == src["answer"]
        assert r["id"] == mixture_row_id("mix-bal", r["source_id"], r["copy"])
        assert r["content_hash"] == mixture_content_hash(src["content_hash"], fmt)
        copies.setdefault(r["source_id"], []).append(r["copy"])
    factor = {"Collision": 15, "Near-Collision": 2, "Normal Driving": 1}
    for sid, cs in copies.items():
        assert sorted(cs) == list(range(factor[sources[sid]["label"]]))
    assert len(copies) == len(sources)
    assert len({r["id"] for r in t}) == len(t)
    # "*" doubles every class; count and fraction draw without replacement
    by = Counter(r["source_config"] for r in t)
    assert by["reasoning_mcq"] == 2 * sum(SMALL["reasoning_mcq"].values())
    assert by["caption_vlm"] == 25
    assert by["caption_metadata"] == 15
    for config in ("caption_vlm", "caption_metadata"):
        ids = [r["source_id"] for r in t if r["source_config"] == config]
        assert len(set(ids)) == len(ids) and {r["copy"] for r in t if r["source_id"] in ids} == {0}
    # the printed table has the same numbers as the recipe asked
    text = res.format()
    assert re.search(r"Collision\s+4\s+4\s+x15\s+60\s+60", text)
    comps = res.report["sides"]["train"]["components"]
    assert [(c["asked"], c["written"]) for c in comps] == [(130, 130), (25, 25), (15, 15), (40, 40)]


def test_same_seed_same_bytes_other_seed_other_draw(tmp_path):
    path = recipe(tmp_path, BALANCE)
    a, b = small_build(tmp_path / "a"), small_build(tmp_path / "b")
    mix(path, a)
    mix(path, b)
    fa, fb = data_path(a, "mix-bal", "train"), data_path(b, "mix-bal", "train")
    assert fa.relative_to(a) == fb.relative_to(b)  # named by content: the same name
    assert fa.read_bytes() == fb.read_bytes()
    assert (a / "mix/bal/class_distribution.png").read_bytes() == (
        b / "mix/bal/class_distribution.png"
    ).read_bytes()
    other = recipe(tmp_path, BALANCE.replace("seed: 7", "seed: 8"), "r8.yaml")
    mix(other, b)

    def drawn(build):
        return {r["source_id"] for r in read(build, "mix-bal").to_pylist()}

    assert drawn(a) != drawn(b)


def test_rerun_does_nothing_and_card_shows_the_mixture(tmp_path, build):
    path = recipe(tmp_path, BALANCE)
    mix(path, build)
    assert mix(path, build).skipped
    assert not mix(path, build, force=True).skipped
    card = DatasetCard.load(build / "README.md")
    configs = {c["config_name"] for c in card.data.configs}
    assert "mix-bal" in configs
    assert "![class distribution of mix-bal](mix/bal/class_distribution.png)" in card.text
    assert (build / "mix/bal/class_distribution.png").read_bytes()[:4] == b"\x89PNG"
    assert "| 0 | `mcq` | upsample Collision x15, Near-Collision x2 | Collision | 4 |" in card.text


def test_reasoning_rows_get_the_reasoning_prompt_unless_turned_off(tmp_path, build):
    on = recipe(tmp_path, "components:\n  - config: reasoning_mcq\n    all: true\n", "on.yaml")
    mix(on, build)
    row = read(build, "mix-on").to_pylist()[0]
    src = {r["id"]: r for r in read(build, "reasoning_mcq").to_pylist()}[row["source_id"]]
    assert row["messages"][0]["content"][0]["text"] == load_system_prompt("driving_reasoner")
    assert row["messages"][-1]["content"][0]["text"] == src["target"]
    assert src["target"].startswith("<think>\n") and src["target"].endswith("\n</answer>")
    off = recipe(
        tmp_path,
        "components:\n  - config: reasoning_mcq\n    all: true\n    reasoning: false\n",
        "off.yaml",
    )
    mix(off, build)
    row = read(build, "mix-off").to_pylist()[0]
    assert row["messages"][0]["content"][0]["text"] == load_system_prompt("driving_assistant")
    assert row["messages"][-1]["content"][0]["text"] == src["answer"]


def test_load_dataset_reads_the_mixture(tmp_path, build, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    mix(recipe(tmp_path, BALANCE), build)
    ds = datasets.load_dataset(str(build), "mix-bal", cache_dir=str(tmp_path / "cache"))
    row = ds["train"][0]
    assert row["messages"][1]["content"][0]["type"] == "video"
    assert row["messages"][1]["content"][0]["video"] == row["video"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("components:\n  - config: mcq\n    cont: 3\n", r"components\.0\.cont: Extra inputs"),
        ("components:\n  - config: mcq\n    count: '10'\n", r"components\.0\.count: .*integer"),
        ("components:\n  - config: mcq\n    count: 0.5\n", r"components\.0\.count: .*integer"),
        ("components:\n  - config: mcq\n    fraction: 2\n", r"components\.0\.fraction: .*1"),
        ("components:\n  - config: mcq\n", r"components\.0: .*exactly one amount.*got none"),
        (
            "components:\n  - config: mcq\n    count: 3\n    all: true\n",
            r"components\.0: .*exactly one amount.*got count and all",
        ),
        (
            "components:\n  - config: mcq\n    upsample: {Collision: -1}\n",
            r"components\.0\.upsample",
        ),
        ("splits: [validation]\ncomponents:\n  - config: mcq\n    all: true\n", r"splits\.0: "),
        ("seed: one\ncomponents:\n  - config: mcq\n    all: true\n", r"seed: .*integer"),
        ("components: []\n", r"components: "),
        (
            "components:\n  - config: mcq\n    all: true\n  - config: mcq\n    count: 2\n",
            r"components\.1\.config: 'mcq' is already mixed by components\.0",
        ),
    ],
)
def test_bad_recipes_fail_at_load_with_the_key_path(tmp_path, body, where):
    with pytest.raises(MixtureError, match=where):
        load_mixture(recipe(tmp_path, body))


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (
            "components:\n  - config: vqa\n    all: true\n",
            r"components\.0\.config: 'vqa' is not a config of this build \(it has: caption_meta",
        ),
        (
            "components:\n  - config: failures\n    all: true\n",
            r"components\.0\.config: config 'failures' has no question, answer",
        ),
        (
            "components:\n  - config: mcq\n    upsample: {Colision: 2}\n",
            r"components\.0\.upsample\.Colision: not a class",
        ),
        (
            "components:\n  - config: mcq\n    all: true\n    reasoning: true\n",
            r"components\.0\.reasoning: config 'mcq' has no reasoning",
        ),
        (
            "components:\n  - config: mcq\n    all: true\n  - config: caption_vlm\n    count: 61\n",
            r"components\.1\.count: asks for 61 train rows of 'caption_vlm', which has 60",
        ),
    ],
)
def test_recipes_the_build_cannot_satisfy_fail_clearly(tmp_path, build, body, where):
    with pytest.raises(MixtureError, match=where):
        mix(recipe(tmp_path, body), build)
    assert not (build / "data" / "mix-r").exists()


def _comment_shares(text: str) -> dict[str, float]:
    """config -> the share (%) the comment above its component states."""
    shares, last = {}, None
    for line in text.splitlines():
        m = re.search(r"~(\d+)%", line)
        if line.strip().startswith("#") and m:
            last = float(m.group(1))
        m = re.match(r"\s*- config: (\w+)", line)
        if m:
            shares[m.group(1)] = last
    return shares


def test_the_table1_recipe_reproduces_its_proportions_on_a_paper_sized_build(tmp_path):
    path = bundled("recipes", "mixtures/paper_table1.yaml")
    r = load_mixture(path)
    assert r.name == "paper_table1" and r.splits == ["train"]
    build = small_build(tmp_path, PAPER_SIZES)
    res = mix(path, build)
    side = res.report["sides"]["train"]
    written = {c["config"]: c["written"] for c in side["components"]}
    mcq = PAPER_SIZES["mcq"]
    assert written == {
        "mcq": 15 * mcq["Collision"] + 2 * mcq["Near-Collision"] + mcq["Normal Driving"],
        "caption_metadata": sum(PAPER_SIZES["caption_metadata"].values()),
        "caption_vlm": 10_000,
        "vqa": sum(PAPER_SIZES["vqa"].values()),
        "reasoning_mcq": 2 * sum(PAPER_SIZES["reasoning_mcq"].values()),
        "reasoning_vqa": sum(PAPER_SIZES["reasoning_vqa"].values()),
    }
    # the balanced MCQ of the paper: ~15k / 18k / 35k, ~68k
    assert side["components"][0]["classes"]["Collision"]["written"] == 15_000
    assert side["components"][0]["classes"]["Near-Collision"]["written"] == 18_000
    assert 66_000 <= written["mcq"] <= 70_000
    # the shares the recipe's comments state hold within one point
    total = side["written"]
    assert total == sum(written.values())
    for config, share in _comment_shares(path.read_text()).items():
        assert abs(100 * written[config] / total - share) <= 1.0, config
    assert read(build, "mix-paper_table1").num_rows == total


def test_the_plot_is_redrawn_only_when_its_counts_or_its_file_changed(tmp_path, build, monkeypatch):
    from vlm_autodrive.builders.mix import report

    drawn = []
    real = report.plot_distribution
    monkeypatch.setattr(
        report, "plot_distribution", lambda *a, **k: drawn.append(1) or real(*a, **k)
    )
    path = recipe(tmp_path, BALANCE)
    png = build / "mix/bal/class_distribution.png"
    mix(path, build)
    first = png.read_bytes()
    mix(path, build, force=True)  # same counts: the plot is kept
    assert len(drawn) == 1 and png.read_bytes() == first
    png.write_bytes(first[:100])  # a damaged plot is drawn again
    mix(path, build, force=True)
    assert len(drawn) == 2 and png.read_bytes() == first
    mix(recipe(tmp_path, BALANCE.replace("count: 25", "count: 26")), build)  # other counts
    assert len(drawn) == 3 and png.read_bytes() != first


def test_an_upsampled_test_side_is_pointed_out(tmp_path, build):
    both = "name: both\nsplits: [train, test]\ncomponents:\n  - config: mcq\n"
    res = mix(recipe(tmp_path, both + "    upsample: {Collision: 3}\n", "u.yaml"), build)
    (note,) = [n for n in res.notes if "test side" in n]
    test = res.report["sides"]["test"]
    assert f"holds {test['written'] - sum(test['before'].values())} upsampled copies" in note
    assert f"note: {note}" in res.format()
    plain = mix(recipe(tmp_path, both + "    all: true\n", "p.yaml"), build)
    assert not [n for n in plain.notes if "test side" in n]
