"""MkDocs hooks: the reference pages are generated from the code, so they cannot go stale.

In: a page's Markdown with marker comments. Out: the same Markdown with each marker
replaced by what the code says now:

- `<!-- autodrive-help -->`: `autodrive --help`; `<!-- autodrive-help COMMAND -->`:
  `autodrive COMMAND --help` (COMMAND may be two words: `eval compare`). Made in process
  from the command line's own argparse parser, at a fixed width of 88 columns.
- `<!-- recipe-keys MODULE:CLASS -->`: a table of every key of that pydantic model,
  nested models flattened to dotted keys (`chunk.window`), with its type, default and
  the field's `description`.
- `<!-- docstring MODULE:NAME -->` (NAME may be dotted: `Class.method`): that object's
  docstring, for objects mkdocstrings cannot find (the packages mapped into
  `vlm_autodrive` from top-level folders: `vlm_autodrive.trainer`, `.builders`).
- `<!-- pipeline-stages -->`: the stages of `builders/pipeline.py`'s `PIPELINE`, in
  order, with what each declares as its inputs.

mkdocs.yml names this file under `hooks:`; `exclude_docs` keeps it out of the site.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import types
import typing
from typing import Any

HELP_MARKER = re.compile(r"^<!-- autodrive-help(?: ([\w -]+?))? -->$", re.MULTILINE)
KEYS_MARKER = re.compile(r"^<!-- recipe-keys ([\w.]+):(\w+) -->$", re.MULTILINE)
STAGES_MARKER = re.compile(r"^<!-- pipeline-stages -->$", re.MULTILINE)
DOC_MARKER = re.compile(r"^<!-- docstring ([\w.]+):([\w.]+) -->$", re.MULTILINE)
WIDTH = 88


def on_page_markdown(markdown: str, **_: Any) -> str:
    markdown = HELP_MARKER.sub(lambda m: _fenced(command_help(m.group(1) or "")), markdown)
    markdown = KEYS_MARKER.sub(lambda m: model_table(m.group(1), m.group(2)), markdown)
    markdown = DOC_MARKER.sub(lambda m: docstring(m.group(1), m.group(2)), markdown)
    return STAGES_MARKER.sub(lambda m: stage_table(), markdown)


def docstring(module: str, name: str) -> str:
    """The docstring of `module.name` as Markdown (doctest runs fenced)."""
    import inspect
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))  # docs/: the Griffe extension's helper
    from griffe_doctests import fence_doctests

    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return fence_doctests(inspect.getdoc(obj) or "")


def stage_table() -> str:
    """The pipeline's stages in order, with their declared inputs, as a Markdown table."""
    from vlm_autodrive.builders.pipeline import PIPELINE

    def names(items) -> str:
        return ", ".join(f"`{i}`" for i in items) or "-"

    rows = [
        "| # | stage | upstream outputs it reads | recipe sections | taxonomy | models | code |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n, spec in enumerate(PIPELINE, 1):
        i = spec.inputs
        code = names(c.removeprefix("vlm_autodrive.") for c in i.code)
        rows.append(
            f"| {n} | `{spec.name}` | {names(i.upstream)} | {names(i.recipe)} | "
            f"{'yes' if i.taxonomy else '-'} | {'yes' if i.models else '-'} | {code} |"
        )
    return "\n".join(rows)


def _fenced(text: str) -> str:
    return f"```text\n{text.rstrip()}\n```"


def command_help(command: str) -> str:
    """`autodrive COMMAND --help` as printed at WIDTH columns ('' for the top level)."""
    from vlm_autodrive.cli import _parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)
    try:
        parser = _parser()
        for word in command.split():
            parser = _subparsers(parser)[word]
        return parser.format_help()
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_names() -> list[str]:
    """Every command and sub-command of `autodrive`, as `autodrive COMMAND` takes them."""
    from vlm_autodrive.cli import _parser

    names: list[str] = []
    for name, sub in _subparsers(_parser()).items():
        names.append(name)
        names += [f"{name} {inner}" for inner in _subparsers(sub)]
    return names


def model_table(module: str, name: str) -> str:
    """A Markdown table of every key of the pydantic model `module.name`."""
    model = getattr(importlib.import_module(module), name)
    rows = ["| key | type | default | what it is |", "| --- | --- | --- | --- |"]
    for key, kind, default, text in _fields(model, "", ()):
        rows.append(f"| `{key}` | {kind} | {default} | {text} |")
    return "\n".join(rows)


def _fields(model: Any, prefix: str, seen: tuple):
    for field_name, field in model.model_fields.items():
        key = prefix + (field.alias or field_name)
        nested, suffix = _nested_model(field.annotation)
        text = _cell(field.description or "")
        if nested is not None and nested in (*seen, model):  # a model holding its own kind
            yield key, f"`{nested.__name__}`", _default(field), text or "the same keys again"
        elif nested is not None:
            default = "required" if _default(field) == "required" else ""  # its keys have theirs
            yield key, "section", default, text or _cell(_first_line(nested))
            yield from _fields(nested, f"{key}{suffix}.", (*seen, model))
        else:
            yield key, _cell(f"`{_type_name(field.annotation)}`"), _default(field), text


def _nested_model(annotation: Any) -> tuple[Any, str]:
    """(the pydantic model a field holds, the key suffix: '', '.NAME' for a mapping of
    them, '[]' for a list of them)."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (dict, typing.Dict) and len(args) == 2:  # noqa: UP006
        inner, _ = _nested_model(args[1])
        return (inner, ".NAME") if inner is not None else (None, "")
    if origin in (list, typing.List) and len(args) == 1:  # noqa: UP006
        inner, _ = _nested_model(args[0])
        return (inner, "[]") if inner is not None else (None, "")
    if origin in (typing.Union, types.UnionType):
        models = [a for a in args if a is not type(None)]
        if len(models) == 1:
            return _nested_model(models[0])
    return None, ""


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation)
    text = re.sub(r"\b(typing|pathlib|vlm_autodrive(\.\w+)*)\.", "", text)
    return text.replace("NoneType", "None")


def _default(field: Any) -> str:
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        return "(made)"
    if field.default is PydanticUndefined:
        return "required"
    return _cell(f"`{field.default!r}`")


def _first_line(model: Any) -> str:
    doc = (model.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


def _cell(text: str) -> str:
    """`text` for a table cell: pipes escaped, one line, `<` outside code as an entity
    (a description's `<answer>` is text, not a tag)."""
    parts = text.replace("|", "\\|").replace("\n", " ").split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;") for i, p in enumerate(parts))
