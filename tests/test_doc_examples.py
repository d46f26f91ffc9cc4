"""Every YAML example of the documentation validates: each ```yaml block of README.md, the
folder READMEs and docs/*.md, and the inline `config: {...}` examples, through the same
models the toolkit loads recipes with. The README's `caption_vlm: {import_file: ...}`
failed with "model: Field required" before.

Which model checks a block is decided by an explicit rule (`RULES`); a block that no
rule takes fails this test, so a new example is either checked or given a rule.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from vlm_autodrive.builders.core.strict import load_yaml, validate_model
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.generate.tasks import MODEL_SPLITS
from vlm_autodrive.builders.mix.recipe import MixtureRecipe
from vlm_autodrive.builders.recipe import BuildRecipe
from vlm_autodrive.resources import bundled

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted(
    {ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("*/**/README.md")}
    - set(ROOT.glob(".venv*/**/*.md"))
    - set(ROOT.glob("build/**/*.md"))  # ignored by git: setuptools' stale copy, builds
)
BLOCK = re.compile(r"^```ya?ml\n(.*?)^```", re.MULTILINE | re.DOTALL)
# `caption_vlm: {import_file: captions.jsonl}`: an inline config setting of generate.configs
INLINE_CONFIG = re.compile(r"`((\w+): \{[^`]*\})`")
CONFIG_NAMES = set(MODEL_SPLITS)
# What a recipe fragment lacks to stand alone: the two keys every recipe has.
RECIPE_BASE = {"manifest": "manifest.jsonl", "build_dir": "build"}


def merged(base: dict, top: dict) -> dict:
    """`top` laid over `base`, mappings merged key by key (a README builds a recipe up)."""
    out = copy.deepcopy(base)
    for k, v in top.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def keys_of(model) -> set[str]:
    return set(model.model_fields)


def check_recipe(data: dict, where: str, earlier: dict) -> None:
    """A build-recipe fragment, over the recipe fragments before it in the same file."""
    earlier.update(merged(earlier, data))
    validate_model(where, BuildRecipe, merged(RECIPE_BASE, earlier))


def check_mixture(data: dict, where: str, earlier: dict) -> None:
    validate_model(where, MixtureRecipe, data)


def check_taxonomy_classes(data: list, where: str, earlier: dict) -> None:
    """Classes a README tells users to add to `classes:` of taxonomy.yaml."""
    tax = yaml.safe_load(bundled("templates", "taxonomy.yaml").read_text())
    tax["classes"] = [*tax["classes"], *data]
    validate_model(where, Taxonomy, tax)


# (name, does it take the block, check): the first rule that takes a block checks it.
RULES: list[tuple[str, Callable[[object], bool], Callable]] = [
    (
        "mixture recipe",  # a mapping with `components`
        lambda d: isinstance(d, dict) and "components" in d and set(d) <= keys_of(MixtureRecipe),
        check_mixture,
    ),
    (
        "build recipe fragment",
        lambda d: isinstance(d, dict) and bool(d) and set(d) <= keys_of(BuildRecipe),
        check_recipe,
    ),
    (
        "taxonomy classes",
        lambda d: isinstance(d, list) and all(isinstance(c, dict) and "name" in c for c in d),
        check_taxonomy_classes,
    ),
]


def examples() -> list:
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        rel = doc.relative_to(ROOT)
        for m in BLOCK.finditer(text):
            line = text[: m.start()].count("\n") + 2
            out.append(pytest.param(doc, [(line, m.group(1))], id=f"{rel}:{line}"))
    return out


def check_blocks(doc: Path, blocks: list[tuple[int, str]]) -> None:
    earlier: dict = {}
    text = doc.read_text(encoding="utf-8")
    # The blocks before this one in the same file: a README builds its recipe up.
    for m in BLOCK.finditer(text):
        line = text[: m.start()].count("\n") + 2
        if line >= blocks[0][0]:
            break
        data = load_yaml(m.group(1), f"{doc}:{line}")
        if isinstance(data, dict) and data and set(data) <= keys_of(BuildRecipe):
            earlier.update(merged(earlier, data))
    for line, source in blocks:
        where = f"{doc.relative_to(ROOT)}:{line}"
        data = load_yaml(source, where)
        rule = next((r for r in RULES if r[1](data)), None)
        assert rule is not None, f"{where}: no rule takes this YAML block; add one to RULES"
        rule[2](data, where, earlier)


@pytest.mark.parametrize("doc, blocks", examples())
def test_every_yaml_block_of_the_docs_validates(doc, blocks):
    check_blocks(doc, blocks)


def test_inline_config_examples_validate():
    found = []
    for doc in DOCS:
        for m in INLINE_CONFIG.finditer(doc.read_text(encoding="utf-8")):
            if m.group(2) not in CONFIG_NAMES:
                continue  # `engine_args: {...}`, `dataset: {path, ...}`: not a config
            found.append(m.group(1))
            fragment = {"generate": {"configs": load_yaml(m.group(1), doc)}}
            validate_model(doc, BuildRecipe, merged(RECIPE_BASE, fragment))
    assert "caption_vlm: {import_file: captions.jsonl}" in found


def test_a_config_with_neither_model_nor_import_file_names_the_key():
    with pytest.raises(ValueError, match=r"generate.configs.vqa: model: required"):
        validate_model("recipe", BuildRecipe, {**RECIPE_BASE, "generate": {"configs": {"vqa": {}}}})
