"""Base of every config section: unknown keys are errors, reported with their key path."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


def format_validation_error(source: str | Path, err: ValidationError) -> str:
    """One line per problem: `file: dotted.key.path: message`."""
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"{source}: {where}: {e['msg']}")
    return "\n".join(lines)


def read_yaml_mapping(path: str | Path, kind: str = "recipe") -> dict:
    """A YAML file that must hold a mapping; ValueError naming the file otherwise."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{p}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: {kind} must be a mapping of keys, got {type(data).__name__}")
    return data


def validate_model(path: str | Path, model: type[M], data: dict) -> M:
    """`model` validated from `data` read from `path`; ValueError naming file and key path."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ValueError(format_validation_error(path, e)) from None
