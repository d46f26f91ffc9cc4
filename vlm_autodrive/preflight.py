"""What `autodrive build` checks before any work: every file and folder the recipe names
and every template it will render, so that a typo fails in a second, not after chunking.

In: a validated build recipe and its taxonomy. Out: nothing, or an InputError (or a
TemplateLoadError) naming the recipe key, the file and the line.
"""

from __future__ import annotations

import re
from pathlib import Path

from vlm_autodrive.builders.core.errors import InputError

# A Hub model id: `name` or `org/name`; anything with more parts is a local path.
_HUB_ID = re.compile(r"[\w][\w.-]*(/[\w][\w.-]*)?")


def check_build_recipe(recipe, taxonomy, source: str | Path = "recipe") -> None:
    """Raise for the first thing of `recipe` (read from `source`) that the build would
    fail on later."""
    from vlm_autodrive.builders.rules.stage import load_rule_templates

    gen = recipe.generate
    manifest = Path(recipe.manifest)
    if not recipe.sample and not manifest.is_file():  # a sample is generated when absent
        _refuse(
            source,
            "manifest",
            recipe.manifest,
            "no such file" if not manifest.exists() else "is a folder, not a manifest file",
        )
    folders = {"rules.templates": recipe.rules.templates, "generate.prompts": gen and gen.prompts}
    for key, folder in folders.items():
        if folder and not Path(folder).is_dir():
            _refuse(source, key, folder, "no such folder")
    load_rule_templates(recipe.rules, taxonomy)
    if not gen or not gen.configs:
        return
    from vlm_autodrive.builders.generate.stage import load_prompt_templates
    from vlm_autodrive.builders.generate.target import check_target_classes

    load_prompt_templates(gen, taxonomy)
    check_target_classes(gen, taxonomy, source)
    for name, split in gen.configs.items():
        key = f"generate.configs.{name}.import_file"
        if split.import_file and not Path(split.import_file).is_file():
            _refuse(source, key, split.import_file, "no such file")
        elif not split.import_file:
            check_model_path(
                gen.models[split.model], f"generate.models.{split.model}.model", source
            )


def _refuse(source: str | Path, key: str, value: str, problem: str) -> None:
    raise InputError(source, f"{value}: {problem}", key)


def check_model_path(cfg, key: str, source: str | Path = "recipe") -> None:
    """A model that this machine loads (backend vllm, or a local server) must be a folder
    that exists or a Hub id; a path that is not there is named now (transformers would
    later say `Repo id must be in the form ...`)."""
    if cfg.backend != "vllm" and not cfg.local_server:
        return  # a server someone else runs: `model` is the name it serves
    check_local_model(cfg.model, key, source)


def check_local_model(model: str, key: str, source: str | Path) -> None:
    """`model` is an existing folder, or has the form of a Hub id; InputError otherwise."""
    from vlm_autodrive.builders.core.fingerprint import model_files

    path = Path(model).expanduser()
    if path.is_dir():
        if not model_files(path):  # checked now, not when its weights are hashed
            _refuse(source, key, model, "no model files (config.json, *.safetensors) in it")
        return
    if path.exists():
        _refuse(source, key, model, "is a file, but a model is a folder (or a Hub id)")
    if path.is_absolute() or model.startswith(".") or not _HUB_ID.fullmatch(model):
        _refuse(
            source,
            key,
            model,
            "no such model folder (relative paths in a recipe are relative to the "
            "recipe's folder, on the command line to the working directory), and not a "
            "Hub id of the form ORG/NAME",
        )
