"""GRPO recipes validate like the SFT ones: the bundled ones load, mistakes name the key."""

from __future__ import annotations

import pytest
import yaml

from tests.trainer.fixtures import REPO
from vlm_autodrive.trainer.rl.config import GRPO_DEFAULTS, is_grpo_recipe, load_grpo_recipe

BUNDLED = sorted((REPO / "recipes/train").glob("grpo_*.yaml"))


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_bundled_grpo_recipes_load_and_say_what_they_are_for(path):
    assert path.read_text().startswith("# ")
    assert is_grpo_recipe(path)
    recipe = load_grpo_recipe(path, check_grpo=False)
    assert recipe.rewards.as_list() == [1.0, 1.0]
    assert not is_grpo_recipe(REPO / "recipes/train/tiny_cpu.yaml")


def test_defaults_are_cosmos_reason1s():
    recipe = load_grpo_recipe(REPO / "recipes/train/grpo_cosmos_reason1_7b.yaml", check_grpo=False)
    fields = recipe.grpo_fields()
    assert (
        {k: fields[k] for k in GRPO_DEFAULTS}
        == GRPO_DEFAULTS
        == {
            "num_generations": 8,
            "temperature": 0.9,
            "beta": 0.0,
            "learning_rate": 2.0e-6,
        }
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("dataset"), "dataset"),
        (lambda d: d["rewards"].update(answer=0, format=0), "every weight is 0"),
        (lambda d: d["rewards"].update(length=1), "rewards.length"),
        (lambda d: d["grpo"].update(use_vllm=True), "use_vllm needs GPUs"),
        (lambda d: d["grpo"].update(vllm_mode="remote"), "vllm_mode"),
        (lambda d: d["grpo"].update(output_dir="x"), "grpo.output_dir"),
    ],
)
def test_bad_recipes_name_the_key(tmp_path, edit, message):
    data = yaml.safe_load((REPO / "recipes/train/grpo_tiny_cpu.yaml").read_text())
    edit(data)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=message):
        load_grpo_recipe(path)
