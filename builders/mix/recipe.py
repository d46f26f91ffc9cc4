"""Mixture recipes (`recipes/mixtures/*.yaml`): which configs, how many rows, which format.

In: a YAML file. Out: a validated `MixtureRecipe`, then, against a build folder, the
checks that need the build (configs exist and can become conversations, upsampled classes
are classes). Every problem is reported as `file: dotted.key.path: message`.

A recipe is a list of components, each one config (`config:`; its old name `split:` still
loads, with a one-line warning) with exactly one amount:

- `count: N` rows drawn without replacement (an error when the config has fewer);
- `fraction: F` (0 < F <= 1) of the config's rows, rounded to the nearest row;
- `upsample: {Collision: 15, Near-Collision: 2}` every row, repeated per class by an
  integer factor (classes not named: 1; `"*"` sets the factor of every class not named;
  0 leaves a class out);
- `all: true` every row once.

Amounts apply to each side listed in `splits` (default `[train]`). Integers are integers
and fractions are fractions: `count: 0.5` and `fraction: 2` are errors, so no amount's
meaning depends on a decimal point.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from vlm_autodrive.builders.core.strict import (
    LOG,
    Strict,
    read_yaml_mapping,
    rename_old_key,
    validate_model,
)

AMOUNTS = ("count", "fraction", "upsample", "all")
OTHER_CLASSES = "*"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _StrictTypes(Strict):
    # YAML gives native types: a string where a number belongs is a mistake, not a cast.
    model_config = ConfigDict(extra="forbid", strict=True)


class ConversationFormat(_StrictTypes):
    """How rows become conversations (see builders/mix/conversations.py)."""

    system_prompt: str | None = Field(
        "driving_assistant", description="system turn of rows answered directly; null: none"
    )
    reasoning_system_prompt: str | None = Field(
        "driving_reasoner", description="system turn of rows answered in the reasoning form"
    )
    reasoning: bool = Field(
        True, description="reasoning configs: answer with <think>...</think> (false: answer only)"
    )


class Component(_StrictTypes):
    """One config of the mixture and its amount."""

    config: str = Field(min_length=1, description="the config to draw from, e.g. mcq")
    count: int | None = Field(None, ge=1)
    fraction: float | None = Field(None, gt=0, le=1)
    upsample: dict[str, int] | None = None
    all: Literal[True] | None = None
    seed: int | None = Field(None, description="overrides the mixture's seed for this one")
    reasoning: bool | None = Field(None, description="overrides conversation.reasoning")

    @field_validator("upsample")
    @classmethod
    def _factors(cls, v: dict[str, int] | None) -> dict[str, int] | None:
        if v is not None:
            bad = {k: f for k, f in v.items() if f < 0}
            if bad:
                raise ValueError(f"upsample factors are integers >= 0, got {bad}")
            if not v:
                raise ValueError("upsample needs at least one class (or use all: true)")
        return v

    @model_validator(mode="after")
    def _one_amount(self) -> Component:
        given = [a for a in AMOUNTS if getattr(self, a) is not None]
        if len(given) != 1:
            got = " and ".join(given) if given else "none"
            raise ValueError(
                f"give exactly one amount: count, fraction, upsample or all: true (got {got})"
            )
        return self

    @property
    def amount(self) -> str:
        """The amount as the recipe wrote it, for tables."""
        if self.count is not None:
            return f"count {self.count}"
        if self.fraction is not None:
            return f"fraction {self.fraction:g}"
        if self.upsample is not None:
            return "upsample " + ", ".join(f"{k} x{f}" for k, f in self.upsample.items())
        return "all"

    def factor(self, label: str) -> int:
        """The upsampling factor of a class (1 for amounts other than upsample)."""
        if self.upsample is None:
            return 1
        return self.upsample.get(label, self.upsample.get(OTHER_CLASSES, 1))


class MixtureRecipe(_StrictTypes):
    """A whole mixture: its components, seed, sides and conversation format."""

    name: str | None = Field(None, description="config becomes mix-<name>; default: file stem")
    description: str | None = None
    seed: int = 0
    splits: list[Literal["train", "test"]] = Field(default_factory=lambda: ["train"], min_length=1)
    conversation: ConversationFormat = ConversationFormat()
    components: list[Component] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.match(v):
            raise ValueError("letters, digits and _ . - only, starting with a letter or digit")
        return v

    @field_validator("splits")
    @classmethod
    def _unique_sides(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"sides repeat: {v}")
        return v


class MixtureError(ValueError):
    """A recipe that cannot be mixed; the message has one `file: key.path: problem` a line."""


def mixture_name(recipe: MixtureRecipe, path: Path) -> str:
    """The mixture's name (its config is `mix-<name>`)."""
    name = recipe.name or Path(path).stem
    if not _NAME.match(name):
        raise MixtureError(f"{path}: name: {name!r} is not usable as a config name")
    return name


def load_mixture(path: str | Path) -> MixtureRecipe:
    """Load and validate a mixture recipe; MixtureError names the file and key path."""
    p = Path(path)
    try:
        data = read_yaml_mapping(p, "a mixture recipe")
        _rename_old_keys(data, p)
        recipe = validate_model(p, MixtureRecipe, data)
    except ValueError as e:
        raise MixtureError(str(e)) from None
    seen: dict[str, int] = {}
    problems = []
    for i, c in enumerate(recipe.components):
        if c.config in seen:
            problems.append(
                f"{p}: components.{i}.config: {c.config!r} is already mixed by "
                f"components.{seen[c.config]} (one component per config)"
            )
        seen.setdefault(c.config, i)
    if problems:
        raise MixtureError("\n".join(problems))
    mixture_name(recipe, p)
    return recipe


def _rename_old_keys(data: dict, source: Path) -> None:
    """A component's `split:` (its config) read as `config:`, in place: one warning line
    for the file however many components use it; InputError when one gives both."""
    components = data.get("components")
    if not isinstance(components, list):
        return
    old = [c for c in components if isinstance(c, dict) and "split" in c]
    for i, c in enumerate(components):
        if isinstance(c, dict) and "split" in c and "config" in c:
            rename_old_key(c, "split", "config", source, f"components.{i}.")  # raises
    for c in old:
        c["config"] = c.pop("split")
    if old:
        LOG.warning(
            "%s: components.*.split: renamed components.*.config; the old key still works",
            source,
        )


def check_against_build(
    recipe: MixtureRecipe,
    source: str | Path,
    configs: dict[str, Any],
    columns: dict[str, list[str]],
    classes: list[str],
) -> None:
    """Checks that need the build: every component's config exists there and has the
    columns of a conversation, reasoning overrides fit, upsampled classes are classes.

    `configs` is provenance.json's `configs`, `columns` each config's column names,
    `classes` the taxonomy's class names. Raises MixtureError listing every problem.
    """
    from vlm_autodrive.builders.mix.conversations import has_reasoning, missing_columns

    problems = []
    for i, c in enumerate(recipe.components):
        where = f"{source}: components.{i}"
        if c.config not in configs:
            have = ", ".join(sorted(configs)) or "none"
            problems.append(
                f"{where}.config: {c.config!r} is not a config of this build (it has: {have})"
            )
            continue
        missing = missing_columns(columns[c.config])
        if missing:
            problems.append(
                f"{where}.config: config {c.config!r} has no {', '.join(missing)} column: "
                "it cannot become conversations"
            )
            continue
        if c.reasoning and not has_reasoning(columns[c.config]):
            problems.append(
                f"{where}.reasoning: config {c.config!r} has no reasoning or target column"
            )
        for k in c.upsample or {}:
            if k != OTHER_CLASSES and k not in classes:
                problems.append(
                    f"{where}.upsample.{k}: not a class of the taxonomy ({', '.join(classes)})"
                )
    if problems:
        raise MixtureError("\n".join(problems))
