"""A config (mcq, vqa, ...) and a side (train, test) are never both called "split": the
build recipe's `rules:` and `generate.configs:` (once `splits:` and `generate.splits:`),
a mixture component's `config:` (once `split:`). Old keys still load, to the same
validated recipe, with one warning line naming the file and the new key; both at once is
an error naming both. And `builders/core` imports no stage package."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

import vlm_autodrive.builders as builders_package
from vlm_autodrive.builders.mix.recipe import MixtureError, load_mixture
from vlm_autodrive.builders.recipe import load_recipe
from vlm_autodrive.cli import main
from vlm_autodrive.resources import bundled

NEW = """\
manifest: manifest.jsonl
build_dir: build
rules: {configs: [mcq], test_per_class: 3, seed: 4}
generate:
  models: {m: {model: some-org/m, base_urls: ["http://127.0.0.1:9/v1"]}}
  configs:
    vqa: {model: m, temperature: 0.2}
"""
OLD = NEW.replace("rules:", "splits:").replace("  configs:", "  splits:")

MIX_NEW = """\
name: m
splits: [train, test]
components:
  - config: mcq
    all: true
  - config: caption_metadata
    fraction: 0.5
"""
MIX_OLD = MIX_NEW.replace("- config:", "- split:")


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_old_build_recipe_keys_load_to_the_same_recipe_with_one_line_each(tmp_path, caplog):
    new = load_recipe(write(tmp_path, "new.yaml", NEW))
    assert warnings_of(caplog) == []
    old_path = write(tmp_path, "old.yaml", OLD)
    old = load_recipe(old_path)
    assert old.model_dump() == new.model_dump()
    assert old.rules.seed == 4 and old.generate.configs["vqa"].temperature == 0.2
    assert warnings_of(caplog) == [
        f"{old_path}: splits: renamed rules; the old key still works",
        f"{old_path}: generate.splits: renamed generate.configs; the old key still works",
    ]


def test_old_override_paths_work_with_a_line_naming_the_new_key(tmp_path, caplog):
    path = write(tmp_path, "new.yaml", NEW)
    old = load_recipe(path, ["splits.seed=9", "generate.splits.vqa.temperature=0.5"])
    new = load_recipe(path, ["rules.seed=9", "generate.configs.vqa.temperature=0.5"])
    assert old.model_dump() == new.model_dump() and old.rules.seed == 9
    assert warnings_of(caplog) == [
        "--set splits.seed: renamed rules.seed; the old key still works",
        "--set generate.splits.vqa.temperature: renamed generate.configs.vqa.temperature; "
        "the old key still works",
    ]


@pytest.mark.parametrize(
    "text, words",
    [
        (NEW + "splits: {seed: 1}\n", "splits: both splits and rules given"),
        (
            NEW + "  splits: {vqa: {model: m}}\n",
            "generate.splits: both generate.splits and generate.configs given",
        ),
    ],
)
def test_old_and_new_key_together_is_an_error_naming_both(tmp_path, text, words):
    path = write(tmp_path, "both.yaml", text)
    with pytest.raises(ValueError) as e:
        load_recipe(path)
    assert str(e.value).startswith(f"{path}: {words}")


def test_the_command_line_prints_the_line_on_stderr(tmp_path, capsys):
    path = write(tmp_path, "old.yaml", OLD)
    code = main(["build", str(path), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2  # the manifest is missing: the recipe was read first
    assert f"{path}: splits: renamed rules; the old key still works" in err
    assert f"{path}: generate.splits: renamed generate.configs" in err


def test_old_mixture_component_key_loads_to_the_same_recipe_with_one_line(tmp_path, caplog):
    new = load_mixture(write(tmp_path, "new.yaml", MIX_NEW))
    assert warnings_of(caplog) == []
    old_path = write(tmp_path, "old.yaml", MIX_OLD)
    old = load_mixture(old_path)
    assert old.model_dump() == new.model_dump()
    assert [c.config for c in old.components] == ["mcq", "caption_metadata"]
    assert old.splits == ["train", "test"]  # the sides keep their name
    assert warnings_of(caplog) == [
        f"{old_path}: components.*.split: renamed components.*.config; the old key still works"
    ]


def test_a_mixture_component_with_split_and_config_is_an_error_naming_both(tmp_path):
    text = MIX_NEW.replace("  - config: caption_metadata", "  - config: x\n    split: y")
    path = write(tmp_path, "both.yaml", text)
    with pytest.raises(MixtureError) as e:
        load_mixture(path)
    assert str(e.value) == (
        f"{path}: components.1.split: both components.1.split and components.1.config "
        "given: components.1.split is the old name of components.1.config; keep "
        "components.1.config"
    )


def test_bundled_recipes_use_the_new_keys(caplog):
    for name in ("quickstart.yaml", "cluster.yaml"):
        load_recipe(bundled("recipes", name))
    for path in sorted(bundled("recipes", "mixtures").glob("*.yaml")):
        load_mixture(path)
    assert warnings_of(caplog) == []


def imported_modules(path: Path, package: str) -> set[str]:
    """Every module `path` imports, at its top or inside a function (relative imports
    resolved against `package`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            names |= {module} | {f"{module}.{a.name}" for a in node.names}
    return names


def test_core_imports_no_stage_package():
    root = Path(builders_package.__file__).parent
    stages = sorted(p.name for p in root.iterdir() if (p / "__init__.py").is_file())
    stages.remove("core")
    assert {"generate", "rules", "clips", "mix", "ingest"} <= set(stages)
    prefixes = tuple(f"vlm_autodrive.builders.{s}" for s in stages)
    found = [
        f"{path.relative_to(root)} imports {name}"
        for path in sorted((root / "core").rglob("*.py"))
        for name in sorted(imported_modules(path, "vlm_autodrive.builders.core"))
        if name == "vlm_autodrive.builders.recipe"
        or any(name == p or name.startswith(p + ".") for p in prefixes)
    ]
    assert found == []
