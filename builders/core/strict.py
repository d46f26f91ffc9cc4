"""Base of every config section: unknown keys are errors, reported with their key path.

Also the one YAML reader of configs (`load_yaml`): safe (no Python tags), and a key given
twice in one mapping is an error naming the key and its line, not a silent overwrite.
Recipes are files users share, so the reader has limits: a file of at most
MAX_YAML_BYTES, and at most MAX_YAML_VALUES values once YAML aliases are expanded (an
"alias bomb" of nine aliases of nine aliases... is a few lines that expand to millions
of values, which the build would write into provenance.json), no alias inside its own
anchor, no nesting deeper than Python can walk.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from vlm_autodrive.builders.core.errors import InputError, require_file

M = TypeVar("M", bound=BaseModel)
LOG = logging.getLogger("vlm_autodrive.recipes")

MAX_YAML_BYTES = 4 << 20  # the largest bundled config is a few kB
MAX_YAML_VALUES = 100_000  # every mapping, list and scalar, aliases counted each time used


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors, not silently ignored; NaN and
    infinity are refused (a window of `nan` seconds would pass `gt=0` checks otherwise)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated within one mapping."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} given twice (first on line {seen[key]}, again on line {line})",
                    key_node.start_mark,
                )
            if isinstance(key, (str, int, float, bool)):
                seen[key] = line
        return super().construct_mapping(node, deep)


# YAML 1.2 reads `1e-5` as a number; PyYAML (YAML 1.1) wants a dot and reads the text
# "1e-5", so `learning_rate: 1e-5` reached the trainer as a string and failed late.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str, source: str | Path) -> Any:
    """`text` parsed as safe YAML; InputError naming `source` and the line otherwise."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except RecursionError:
        raise InputError(source, "not valid YAML: nested too deeply") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or str(e)
        if "could not determine a constructor" in problem:
            problem = f"{problem}: tags that build Python objects are not allowed"
        raise InputError(source, f"not valid YAML: {problem}", where) from None
    _check_expansion(data, source)
    return data


def _check_expansion(data: Any, source: str | Path) -> None:
    """InputError naming the key whose value expands past MAX_YAML_VALUES values, or that
    holds itself. PyYAML builds an alias as a second reference to its anchor's object, so
    sizes are summed over references, memoised per object: linear in the file's size."""
    sizes: dict[int, int] = {}
    path: list[str] = []

    def size(node: Any, key: str, parents: set[int]) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        if id(node) in parents:
            where = ".".join([*path[1:], key]) or "(top level)"
            raise InputError(source, "a YAML alias inside its own anchor: it holds itself", where)
        if id(node) not in sizes:
            parents.add(id(node))
            path.append(key)
            items = node.items() if isinstance(node, dict) else enumerate(node)
            sizes[id(node)] = 1 + sum(size(v, str(k), parents) for k, v in items)
            path.pop()
            parents.discard(id(node))
        return sizes[id(node)]

    try:
        total = size(data, "", set())
    except RecursionError:
        raise InputError(source, "nested too deeply") from None
    if total <= MAX_YAML_VALUES:
        return
    keys, node = [], data
    while isinstance(node, dict):  # down to the one key that holds the expansion
        big = [(k, v) for k, v in node.items() if size(v, "", set()) > MAX_YAML_VALUES]
        if len(big) != 1:
            break
        keys.append(str(big[0][0]))
        node = big[0][1]
    raise InputError(
        source,
        f"holds {size(node, '', set()):,} values once YAML aliases (*name) are expanded; "
        f"a config holds at most {MAX_YAML_VALUES:,}",
        ".".join(keys) or None,
    )


def read_text_file(path: str | Path, what: str) -> str:
    """A UTF-8 text file (a BOM is allowed); InputError naming the file otherwise."""
    p = Path(path)
    require_file(p, what)
    try:
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        line = p.read_bytes()[: e.start].count(b"\n") + 1
        raise InputError(p, f"not UTF-8 text (byte {e.object[e.start]:#04x})", line) from None


def format_validation_error(source: str | Path, err: ValidationError, flags: bool = False) -> str:
    """One line per problem: `file: dotted.key.path: message` (`--flag` with `flags`)."""
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if flags and e["loc"]:
            where = "--" + str(e["loc"][0]).replace("_", "-")
        lines.append(f"{source}: {where}: {e['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def read_yaml_mapping(path: str | Path, kind: str = "recipe") -> dict:
    """A YAML file that must hold a mapping; InputError naming the file otherwise."""
    p = Path(path)
    require_file(p, kind)
    if p.stat().st_size > MAX_YAML_BYTES:
        raise InputError(
            p, f"{p.stat().st_size:,} bytes: {kind} is at most {MAX_YAML_BYTES:,} bytes of YAML"
        )
    data = load_yaml(read_text_file(p, kind), p) or {}
    if not isinstance(data, dict):
        raise InputError(p, f"{kind} must be a mapping of keys, got {type(data).__name__}")
    return data


def validate_model(path: str | Path, model: type[M], data: dict, flags: bool = False) -> M:
    """`model` validated from `data` read from `path`; ValueError naming file and key path
    (with `flags`, the key as the command-line option: `--fps`)."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ValueError(format_validation_error(path, e, flags)) from None


def rename_old_key(node: dict, old: str, new: str, source: str | Path, where: str = "") -> bool:
    """Move `node[old]` to `node[new]` in place (a key that was renamed), with a one-line
    warning naming `source` and both keys (`where`: the dotted path of `node`). True when
    `old` was there. Both given: InputError naming both (which one was meant is unknown).
    The warning goes through logging: `autodrive` prints it to stderr (and --log-file),
    a Python caller sees it on stderr through logging's last-resort handler."""
    if old not in node:
        return False
    old_path, new_path = f"{where}{old}", f"{where}{new}"
    if new in node:
        raise InputError(
            source,
            f"both {old_path} and {new_path} given: {old_path} is the old name of "
            f"{new_path}; keep {new_path}",
            old_path,
        )
    node[new] = node.pop(old)
    LOG.warning("%s: %s: renamed %s; the old key still works", source, old_path, new_path)
    return True
