"""What an output is made from, as content: code, models, user files, settings.

In: module names, a model id or folder, paths, validated settings. Out: strings that
change exactly when what they stand for changes, and never with where it lies:

- `code_fingerprint(modules)`: the project modules named and every project module they
  import (followed transitively, imports inside functions included), each by its syntax
  tree without docstrings, so a comment or docstring edit does not count and a behaviour
  edit does. Modules that only declare settings schemas, and the pipeline that runs every
  stage (`SCHEMA_MODULES`), are not followed: the settings' values are inputs, their
  classes' code is not.
- `model_identity(model, revision, memo_dir)`: a local model folder by the sha256 of its
  weight, config and tokenizer files (memoised by size and modification time in
  `memo_dir`, so an unchanged checkpoint is hashed once); anything else (a Hub id, a
  served name) by its name and revision. Shared by the model splits and eval.
- `path_fingerprint(path)`: a file by its sha256, a folder by its files' relative names
  and sha256 (hidden files skipped), a missing path as missing.
- `input_values(settings)`: a validated settings model as plain data for a key, without
  the fields marked `NOT_AN_INPUT` (workers, servers, timeouts: how a stage runs, not
  what it makes) and with the fields marked `FILE_INPUT` (paths) replaced by the
  fingerprint of what they name.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.files import memoized_sha256, write_json

PROJECT = "vlm_autodrive"
# Field markers (pydantic `json_schema_extra`): a setting that does not change any output,
# and a setting that is a path whose content is the input.
NOT_AN_INPUT = {"input": False}
FILE_INPUT = {"input": "file"}
# Not followed: settings schemas (their values are inputs; following their imports would
# make every stage depend on every other stage's settings classes, a description edit
# redoing everything) and the pipeline, which imports every stage to run it.
SCHEMA_MODULES = frozenset(
    {
        f"{PROJECT}.builders.pipeline",
        f"{PROJECT}.builders.recipe",
        f"{PROJECT}.builders.core.sections",
        f"{PROJECT}.builders.core.strict",
        f"{PROJECT}.builders.core.errors",
        f"{PROJECT}.builders.core.ray_cluster",
        f"{PROJECT}.builders.generate.config",
        f"{PROJECT}.builders.rules.config",
    }
)

_TREE_MEMO: dict[tuple[str, int, int], tuple[str, tuple[str, ...]]] = {}
_TREE_DIRTY: set[tuple[str, int, int]] = set()


def code_fingerprint(modules: tuple[str, ...] | list[str]) -> str:
    """The sha256 of `modules` and the project modules they import (see the module)."""
    seen: dict[str, str] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None:
            seen[name] = "missing"
            continue
        digest, imports = _module_tree(name, path)
        seen[name] = digest
        todo += [m for m in imports if m not in seen and m not in SCHEMA_MODULES]
    if _TREE_DIRTY:
        _save_tree_memo()
        _TREE_DIRTY.clear()
    text = json.dumps(seen, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def module_closure(modules: tuple[str, ...] | list[str]) -> list[str]:
    """The project modules `code_fingerprint(modules)` covers, sorted (for messages and
    tests)."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is not None:
            todo += [m for m in _module_tree(name, path)[1] if m not in SCHEMA_MODULES]
    return sorted(seen)


@functools.cache
def _package_dir(package: str) -> Path | None:
    """The folder of a project package (the installed mapping decides where it is)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def _module_file(name: str) -> Path | None:
    """The source file of a project module, found from its top package's folder without
    importing anything below it (None: not a project module, or not a .py file)."""
    parts = name.split(".")
    if parts[0] != PROJECT:
        return None
    root = _package_dir(".".join(parts[:2])) if len(parts) > 1 else _package_dir(PROJECT)
    if root is None:
        return None
    base = root.joinpath(*parts[2:])
    if len(parts) > 2 and base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if len(parts) == 2 and root.with_suffix(".py").is_file():  # vlm_autodrive.cli and such
        return root.with_suffix(".py")
    return None


def _tree_memo_path() -> Path:
    """Where syntax-tree hashes are kept between runs (per Python version: `ast` differs)."""
    import sys

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return cache / "vlm-autodrive" / f"code-trees-py{version}.json"


def _load_tree_memo() -> None:
    if _TREE_MEMO:
        return
    try:
        stored = json.loads(_tree_memo_path().read_text())
    except (OSError, ValueError):
        return
    for key, (digest, imports) in stored.items():
        path, size, mtime = key.rsplit(":", 2)
        _TREE_MEMO[(path, int(size), int(mtime))] = (digest, tuple(imports))


def _save_tree_memo() -> None:
    """Best effort: an unwritable cache folder only costs the next run the parsing."""
    data = {f"{p}:{s}:{m}": [d, list(i)] for (p, s, m), (d, i) in _TREE_MEMO.items()}
    with contextlib.suppress(OSError):
        write_json(_tree_memo_path(), data)


def _module_tree(name: str, path: Path) -> tuple[str, tuple[str, ...]]:
    """(the hash of the module's syntax tree without docstrings, the project modules it
    imports), memoised per file state, in this process and between runs."""
    _load_tree_memo()
    st = os.stat(path)
    memo = (str(path), st.st_size, st.st_mtime_ns)
    if memo not in _TREE_MEMO:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        imports = tuple(sorted(_project_imports(tree, name, path.name == "__init__.py")))
        _strip_docstrings(tree)
        dump = ast.dump(tree, annotate_fields=False, include_attributes=False)
        _TREE_MEMO[memo] = (hashlib.sha256(dump.encode()).hexdigest(), imports)
        _TREE_DIRTY.add(memo)
    return _TREE_MEMO[memo]


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]


def _project_imports(tree: ast.AST, name: str, is_package: bool) -> set[str]:
    """The project modules a module imports: `import a.b`, `from a import b` (b a module
    or a name of a), relative imports resolved against `name`."""
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith(PROJECT))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if not mod.startswith(PROJECT):
                continue
            out.add(mod)
            for a in node.names:
                sub = f"{mod}.{a.name}"
                if _module_file(sub) is not None:
                    out.add(sub)
    return out


# The files of a model folder that decide what it answers (weights, configs, tokenizer,
# chat template), and those `autodrive train` writes about the run, not the model.
_MODEL_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.gguf", "*.json", "*.jinja", "*.model")
_RUN_RECORDS = {"train_stamp.json", "train_summary.json", "trainer_state.json", "training_args.bin"}
MODEL_MEMO = "model_hashes.json"


def model_files(folder: Path) -> list[Path]:
    """The files of a model folder that decide what it answers, sorted by name."""
    return sorted(
        {
            f
            for pattern in _MODEL_PATTERNS
            for f in Path(folder).glob(pattern)
            if f.is_file() and f.name not in _RUN_RECORDS
        },
        key=lambda f: f.name,
    )


def model_identity(model: str, revision: str | None, memo_dir: Path | None) -> str:
    """The identity of `model` (see the module): `weights:SHA` for a local folder, else
    `name@revision` (`@unpinned` without one; a folder without model files, which only a
    server someone else runs can name, by its own name). `memo_dir` None: memoised in
    this process only."""
    folder = Path(model)
    files = model_files(folder) if folder.is_dir() else []
    if not files:
        name = folder.name if folder.is_dir() else model
        return f"{name}@{revision or 'unpinned'}"
    memo: dict[str, str] = {}
    memo_path = Path(memo_dir) / MODEL_MEMO if memo_dir is not None else None
    if memo_path is not None:
        try:
            memo = json.loads(memo_path.read_text())
        except (OSError, ValueError):
            memo = {}
    digests, changed = {}, False
    for f in files:
        st = f.stat()
        stamp = f"{f.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        if memo.get(stamp) is None:
            memo[stamp] = memoized_sha256(f)  # once a process, whichever memo asks
            changed = True
        digests[f.name] = memo[stamp]
    if changed and memo_path is not None:  # best effort, as every memo
        with contextlib.suppress(OSError):
            memo_path.parent.mkdir(parents=True, exist_ok=True)
            write_json(memo_path, memo)
    text = json.dumps(digests, sort_keys=True)
    return "weights:" + hashlib.sha256(text.encode()).hexdigest()


def path_fingerprint(path: str | Path | None) -> str | dict[str, str] | None:
    """A file by its sha256, a folder by {relative name: sha256} of its files (hidden
    ones skipped), None as None; a relative name that is not there (a Hub reference such
    as ORG/NAME@v1.0.0) as itself, any other missing path as "missing"."""
    if path is None:
        return None
    p = Path(path)
    if p.is_file():
        return memoized_sha256(p)
    if p.is_dir():
        return {
            f.relative_to(p).as_posix(): memoized_sha256(f)
            for f in sorted(p.rglob("*"))
            if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
        }
    return "missing" if p.is_absolute() else str(path)


def input_values(settings: Any) -> Any:
    """`settings` (a pydantic model, or plain data holding models) as plain data for a
    key: fields marked NOT_AN_INPUT left out, FILE_INPUT paths replaced by their content
    fingerprint (see the module)."""
    from pydantic import BaseModel

    if isinstance(settings, BaseModel):
        out = {}
        for name, field in type(settings).model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            marker = extra.get("input")
            if marker is False:
                continue
            value = getattr(settings, name)
            out[name] = path_fingerprint(value) if marker == "file" else input_values(value)
        return out
    if isinstance(settings, dict):
        return {str(k): input_values(v) for k, v in settings.items()}
    if isinstance(settings, list | tuple):
        return [input_values(v) for v in settings]
    return json.loads(json.dumps(settings, default=str))
