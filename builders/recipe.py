"""Build recipes: one validated YAML that drives ingest, chunking and the configs.

A bad recipe fails at load with the file and the dotted path of the offending key.
A config (mcq, vqa, ...) and a side (train, test) are never both called "split": the
rule configs' section is `rules:` and the model configs' `generate.configs:` (their old
names `splits:` and `generate.splits:` still load, with a one-line warning; see
RENAMED_KEYS).
Relative paths in a recipe file are relative to the recipe's folder (as manifest paths
are to the manifest's), except in the bundled recipes, which are run from anywhere and
write under the working directory; paths given with `--set` are relative to the
working directory.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from vlm_autodrive.builders.core.errors import InputError
from vlm_autodrive.builders.core.fingerprint import FILE_INPUT, NOT_AN_INPUT
from vlm_autodrive.builders.core.ray_cluster import RaySettings
from vlm_autodrive.builders.core.sections import AuditConfig, ChunkConfig, IngestConfig
from vlm_autodrive.builders.core.strict import (
    LOG,
    Strict,
    load_yaml,
    read_yaml_mapping,
    rename_old_key,
    validate_model,
)
from vlm_autodrive.builders.generate.config import GenerateConfig
from vlm_autodrive.builders.rules.config import RuleSplitsConfig

# Renamed recipe keys, old dotted path -> new: `splits:` held the rule configs' settings
# and `generate.splits:` the model configs', while `split` elsewhere is a side.
RENAMED_KEYS = (("splits", "rules"), ("generate.splits", "generate.configs"))


class SampleConfig(Strict):
    """Synthetic sample to generate before ingest (`manifest` then points into it)."""

    videos: int = 12
    seed: int = 0
    duration: float = 20.0
    width: int = 320
    height: int = 180
    fps: float = 30.0
    gop: int = Field(30, description="keyframe interval in frames")

    @field_validator("*")
    @classmethod
    def _in_bounds(cls, value: Any, info: ValidationInfo) -> Any:
        # builders/synthetic/limits.py: the sample code checks the same bounds again
        from vlm_autodrive.builders.synthetic.limits import sample_setting_problem

        problem = sample_setting_problem(info.field_name, value)
        if problem:
            raise ValueError(problem)
        return value


class BuildRecipe(Strict):
    """A whole build: where the videos are, where the build goes, how to cut and split."""

    manifest: str = Field(json_schema_extra=FILE_INPUT)
    build_dir: str = Field(json_schema_extra=NOT_AN_INPUT)
    taxonomy: str | None = Field(
        None,
        description="the label set (taxonomy YAML); default: the taxonomy.yaml of "
        "rules.templates when that folder has one, else the bundled templates/taxonomy.yaml",
        json_schema_extra=FILE_INPUT,
    )
    engine: Literal["local", "ray"] = Field(
        "local",
        description="where videos are cut: `local` (a process pool on this machine) or "
        "`ray` (Ray Data tasks on the cluster of the `ray:` section; the same clips)",
        json_schema_extra=NOT_AN_INPUT,
    )
    ray: RaySettings = Field(RaySettings(), json_schema_extra=NOT_AN_INPUT)
    sample: SampleConfig | None = None
    ingest: IngestConfig = IngestConfig()
    audit: AuditConfig = AuditConfig()
    chunk: ChunkConfig = ChunkConfig()
    rules: RuleSplitsConfig = Field(
        RuleSplitsConfig(), description="the rule configs and the train/test assignment"
    )
    generate: GenerateConfig | None = None


def recipe_taxonomy(recipe: BuildRecipe) -> str | None:
    """The taxonomy file a recipe builds with: its `taxonomy:` key; else the
    `taxonomy.yaml` of its `rules.templates` folder (a copied templates folder carries
    the label set with the wording); else None, the bundled one."""
    if recipe.taxonomy:
        return recipe.taxonomy
    if recipe.rules.templates:
        candidate = Path(recipe.rules.templates) / "taxonomy.yaml"
        if candidate.is_file():
            return str(candidate)
    return None


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> BuildRecipe:
    """Load a build recipe YAML; raise ValueError naming the file and key path.

    `overrides` are `dotted.key=value` strings (values parsed as YAML), applied before
    validation, e.g. `generate.models.text.backend=vllm`. Old key names (RENAMED_KEYS),
    in the file or an override, are read as the new ones with a one-line warning.
    """
    data = read_yaml_mapping(path, "a build recipe")
    rename_old_keys(data, path)
    if not _is_bundled(Path(path)):
        resolve_recipe_paths(data, Path(path).resolve().parent)
    from_file = copy.deepcopy(data)
    given: list[tuple[tuple[str, ...], str]] = []  # (key path, the --set item), for messages
    for item in overrides or []:
        renamed = renamed_override(item)
        apply_override(data, renamed)
        given.append((tuple(renamed.partition("=")[0].split(".")), item))
    rename_old_keys(data, "--set")  # a whole section given by --set, in its old words
    if not given:
        return validate_model(path, BuildRecipe, data)
    try:
        return BuildRecipe.model_validate(data)
    except ValidationError as e:
        raise ValueError(_blamed(e, path, from_file, given)) from None


def _blamed(err: ValidationError, path: str | Path, from_file: dict, given: list) -> str:
    """One line per problem of a recipe with `--set` values, each naming where the bad
    value came from: `--set chunk.window=abc: chunk.window: ...` for a key a --set gave
    (or a section only a --set made: `--set nosuch.key=1: nosuch: ...`), the file for
    the file's keys, and both for a section that mixes them (a check across its keys)."""
    lines = []
    for e in err.errors():
        loc = tuple(str(p) for p in e["loc"])
        where = ".".join(loc) or "(top level)"
        message = e["msg"].removeprefix("Value error, ")
        lines.append(f"{_source_of(loc, path, from_file, given)}: {where}: {message}")
    return "\n".join(lines)


def _source_of(loc: tuple[str, ...], path: str | Path, from_file: dict, given: list) -> str:
    for keys, item in reversed(given):  # the last --set of a key is the one kept
        if loc[: len(keys)] == keys:
            return f"--set {item}"
    below = [item for keys, item in given if keys[: len(loc)] == loc]
    if below and not _in(from_file, loc):
        return f"--set {below[-1]}"
    return f"{path} with --set {below[-1]}" if below else str(path)


def _in(data: object, loc: tuple[str, ...]) -> bool:
    """Whether the key path `loc` (pydantic's, list indexes as text) is in `data`."""
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return False
    return True


def rename_old_keys(data: dict, source: str | Path) -> None:
    """Move the sections of RENAMED_KEYS found under their old names in `data` (a recipe
    read from `source`) to their new names, in place; InputError when both are given."""
    for old, new in RENAMED_KEYS:
        *parents, old_leaf = old.split(".")
        node: Any = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            where = "".join(f"{p}." for p in parents)
            rename_old_key(node, old_leaf, new.split(".")[-1], source, where)


def renamed_override(item: str) -> str:
    """`item` (`dotted.key=value`) with an old key path of RENAMED_KEYS renamed, with a
    one-line warning: `splits.seed=1` -> `rules.seed=1`."""
    key, sep, raw = item.partition("=")
    for old, new in RENAMED_KEYS:
        if key == old or key.startswith(old + "."):
            new_key = new + key[len(old) :]
            LOG.warning("--set %s: renamed %s; the old key still works", key, new_key)
            return new_key + sep + raw
    return item


# The keys of a build recipe that hold paths; `*` is any key of that mapping.
_PATH_KEYS = (
    ("manifest",),
    ("build_dir",),
    ("taxonomy",),
    ("rules", "templates"),
    ("rules", "pin_assignment"),
    ("generate", "prompts"),
    ("generate", "configs", "*", "import_file"),
    ("generate", "models", "*", "model"),
)


def resolve_recipe_paths(data: dict, folder: Path) -> None:
    """Make the relative paths of a recipe file relative to its folder, in place.

    A model is a path only when it is one there (else it is a Hub id or a served name);
    `pin_assignment` only when it is not a Hub release (ORG/NAME@vX.Y.Z).
    """

    def walk(node: object, keys: tuple[str, ...]) -> None:
        if not isinstance(node, dict) or not keys:
            return
        head, rest = keys[0], keys[1:]
        for k in list(node) if head == "*" else [head]:
            if k not in node:
                continue
            if rest:
                walk(node[k], rest)
            elif isinstance(node[k], str) and node[k].strip():
                node[k] = _resolved(node[k], folder, k == "model" or "@" in node[k])

    for keys in _PATH_KEYS:
        walk(data, keys)


def _resolved(value: str, folder: Path, only_if_there: bool) -> str:
    p = Path(value).expanduser()
    if p.is_absolute():
        return str(p)
    if only_if_there and not (folder / p).exists():
        return value
    return str(folder / p)


def _is_bundled(path: Path) -> bool:
    """A recipe shipped with the package (its relative paths are the working directory's)."""
    from vlm_autodrive.resources import bundled

    return path.resolve().is_relative_to(bundled("recipes").resolve())


def apply_override(data: dict, item: str) -> None:
    """Set `a.b.c=value` in nested dicts (creating levels); the value is parsed as YAML."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise InputError("--set", f"{item!r}: expected dotted.key=value")
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise InputError("--set", f"{part} is not a mapping", key)
        node = child
    node[leaf] = load_yaml(raw, f"--set {key}")
