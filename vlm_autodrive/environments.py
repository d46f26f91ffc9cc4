"""The project's three environments, and what a command says when it runs in the wrong one.

`.venv` holds the toolkit; training and in-process models need `.venv-train` (torch,
transformers, TRL) and vLLM needs `.venv-vllm` (see docs/getting-started.md).
A command that needs another environment's packages checks them before any work
(`require_environment`) and, instead of a ModuleNotFoundError, says which environment
has them, whether it exists, how to make it and the command line to run there.
Nothing heavy is imported here: packages are looked up with `importlib.util.find_spec`.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]  # the repository, for an editable install


@dataclass(frozen=True)
class Environment:
    """One of the project's virtual environments: its folder name, what makes it, what
    it holds (for the message)."""

    folder: str
    make: str
    holds: str


ENVIRONMENTS = {
    "train": Environment(
        ".venv-train",
        "make train-env",
        "torch, torchvision, transformers, TRL, accelerate, DeepSpeed",
    ),
    "vllm": Environment(".venv-vllm", "make .venv-vllm/.installed", "vLLM's CPU build"),
}


class MissingEnvironment(ValueError):
    """This Python lacks what the command needs; the message names the environment that
    has it (a ValueError: the CLI prints it and exits 2)."""


def environment_candidates(folder: str) -> list[Path]:
    """Where an environment folder may be, in order: the working directory (the
    repository, as the README runs commands), the project that holds this package's
    source (editable install), and beside the running environment (`.venv` ->
    `.venv-train`)."""
    roots = (Path.cwd(), PROJECT, Path(sys.prefix).resolve().parent)
    out: list[Path] = []
    for root in roots:
        p = root / folder
        if p not in out:
            out.append(p)
    return out


def find_environment(name: str) -> Path | None:
    """The first existing folder of environment `name` ("train", "vllm"), or None."""
    for p in environment_candidates(ENVIRONMENTS[name].folder):
        if (p / "bin" / "python").exists():
            return p
    return None


def missing_modules(modules: tuple[str, ...]) -> list[str]:
    """The modules of `modules` this Python cannot import (looked up, not imported)."""
    out = []
    for m in modules:
        try:
            found = importlib.util.find_spec(m) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(m)
    return out


def require_environment(name: str, modules: tuple[str, ...], command: list[str]) -> None:
    """Raise MissingEnvironment unless this Python has every module of `modules`.

    In: the environment that has them ("train" or "vllm"), the modules, and the
    command's arguments after `autodrive` (for the line to run instead).
    """
    missing = missing_modules(modules)
    if not missing:
        return
    env = ENVIRONMENTS[name]
    found = find_environment(name)
    where = found if found is not None else Path(env.folder)
    exe = where / "bin" / "autodrive"
    if found is not None and found.parent.resolve() == Path.cwd().resolve():
        exe = Path(env.folder) / "bin" / "autodrive"
    run = shlex.join([str(exe), *command])
    if found is not None:
        how = f"It exists at {found}: run\n  {run}"
    else:
        how = f"Make it once with `{env.make}` in the project, then run\n  {run}"
    raise MissingEnvironment(
        f"autodrive {command[0]} needs {', '.join(modules)}, and this environment "
        f"({sys.prefix}) lacks {', '.join(missing)}: they are in {env.folder} ({env.holds}). " + how
    )


def command_args(subcommand: str, fallback: list[str]) -> list[str]:
    """This process's arguments after `autodrive` when it runs `subcommand`, else
    `fallback` (a handler called from Python, or a standalone module's entry point)."""
    argv = sys.argv[1:]
    return argv if argv[:1] == [subcommand] else [subcommand, *fallback]
