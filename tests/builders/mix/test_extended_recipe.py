"""recipes/mixtures/extended.yaml: Table 1's components plus the splits beyond the paper,
mixed from a build holding every config it names, each amount as the recipe states."""

from __future__ import annotations

from vlm_autodrive.builders.mix.recipe import load_mixture
from vlm_autodrive.builders.mix.stage import mix
from vlm_autodrive.builders.synthetic.configs import write_synthetic_configs
from vlm_autodrive.resources import bundled

PER_CLASS = {"Collision": 4, "Near-Collision": 6, "Normal Driving": 20}
EVENTS = {"Collision": 4, "Near-Collision": 6}
SIZES = {
    **{
        c: PER_CLASS
        for c in (
            "mcq",
            "caption_metadata",
            "caption_vlm",
            "vqa",
            "reasoning_mcq",
            "reasoning_vqa",
            "reasoning_revised",
            "short_qa",
            "caption_augmented",
        )
    },
    "cause_vqa": EVENTS,  # event clips only
    "cause_reasoning": EVENTS,
}


def test_the_extended_recipe_mixes_table1_and_the_new_splits(tmp_path):
    path = bundled("recipes", "mixtures/extended.yaml")
    recipe = load_mixture(path)
    names = [c.config for c in recipe.components]
    table1 = ["mcq", "caption_metadata", "caption_vlm", "vqa", "reasoning_mcq", "reasoning_vqa"]
    new = ["reasoning_revised", "short_qa", "caption_augmented", "cause_vqa", "cause_reasoning"]
    assert names == table1 + new
    build = tmp_path / "build"
    write_synthetic_configs(build, SIZES, varied=False)
    res = mix(path, build)
    side = res.report["sides"]["train"]
    written = {c["config"]: c["written"] for c in side["components"]}
    n = sum(PER_CLASS.values())
    assert written == {
        "mcq": 15 * 4 + 2 * 6 + 20,
        "caption_metadata": n,
        "caption_vlm": round(0.2 * n),
        "vqa": n,
        "reasoning_mcq": 2 * n,
        "reasoning_vqa": n,
        "reasoning_revised": 2 * n,
        "short_qa": n,
        "caption_augmented": round(0.5 * n),
        "cause_vqa": 2 * 4 + 2 * 6,
        "cause_reasoning": 4 + 6,
    }
    assert side["written"] == sum(written.values())
