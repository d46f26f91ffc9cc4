"""Which taxonomy a recipe builds with, and the one a build's provenance records."""

from __future__ import annotations

import shutil

import pytest

from vlm_autodrive.builders.core.taxonomy import load_taxonomy, taxonomy_from_provenance
from vlm_autodrive.builders.recipe import BuildRecipe, recipe_taxonomy
from vlm_autodrive.resources import bundled


def test_the_recipe_key_then_the_templates_folder_then_the_bundled_one(tmp_path):
    base = {"manifest": "m.jsonl", "build_dir": "b"}
    assert recipe_taxonomy(BuildRecipe(**base)) is None
    folder = tmp_path / "my_templates"
    folder.mkdir()
    with_folder = BuildRecipe(**base, rules={"templates": str(folder)})
    assert recipe_taxonomy(with_folder) is None  # a folder without taxonomy.yaml
    shutil.copy(bundled("templates", "taxonomy.yaml"), folder / "taxonomy.yaml")
    assert recipe_taxonomy(with_folder) == str(folder / "taxonomy.yaml")
    explicit = BuildRecipe(**base, taxonomy="other.yaml", rules={"templates": str(folder)})
    assert recipe_taxonomy(explicit) == "other.yaml"


def test_provenance_taxonomy_round_trips_and_bad_ones_name_the_key():
    tax = load_taxonomy()
    prov = {"stages": {"rule_splits": {"taxonomy": tax.model_dump(mode="json")}}}
    assert taxonomy_from_provenance(prov) == tax
    assert taxonomy_from_provenance({"stages": {"rule_splits": {}}}) is None
    with pytest.raises(ValueError, match=r"stages\.rule_splits\.taxonomy is invalid"):
        taxonomy_from_provenance({"stages": {"rule_splits": {"taxonomy": {"classes": []}}}})
