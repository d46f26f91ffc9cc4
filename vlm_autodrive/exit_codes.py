"""The exit codes every `autodrive` command follows, and how its failure message begins.

One table, read by the CLI's `main()` (which maps exceptions to codes), printed in
`autodrive --help`, and checked command by command in tests/test_exit_codes.py. Light:
no imports, so `--help` stays fast.
"""

from __future__ import annotations

from typing import NamedTuple


class ExitCode(NamedTuple):
    """One exit code: its number, what it means, and how the failure's message on stderr
    begins (empty: the command finished and prints no failure message)."""

    code: int
    meaning: str
    prefix: str


DONE = 0
UNEXPECTED = 1
BAD_INPUT = 2
REJECTS = 3
UNAVAILABLE = 4
INTERRUPTED = 130
TERMINATED = 143

EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(DONE, "done", ""),
    ExitCode(
        UNEXPECTED,
        "the machine's error or an unexpected one (disk full, permissions, a failed upload, "
        "a worker process killed or out of memory: the finished work is kept, the same "
        "command resumes)",
        "error: ",
    ),
    ExitCode(
        BAD_INPUT,
        "bad input or usage: arguments, recipe, manifest, a missing folder, a version "
        "that is already published; the step that found it changed nothing (in a build, "
        "the stages before it keep their finished work)",
        "autodrive: ",
    ),
    ExitCode(
        REJECTS,
        "done, but some inputs were rejected or some samples failed (in the rejects "
        "files and the `failures` config)",
        "",
    ),
    ExitCode(
        UNAVAILABLE,
        "a model server or the Hub could not be reached; nothing was sent",
        "error: ",
    ),
    ExitCode(
        INTERRUPTED,
        "interrupted (^C); finished work is kept, the same command resumes",
        "interrupted",
    ),
    ExitCode(
        TERMINATED,
        "terminated (SIGTERM, as timeout, docker stop, Kubernetes and Slurm send); "
        "finished work is kept, the same command resumes",
        "interrupted (SIGTERM)",
    ),
)
PREFIX = {e.code: e.prefix for e in EXIT_CODES}


def exit_code_table(width: int = 79) -> str:
    """The table as `autodrive --help` prints it: `  CODE  meaning` per code, wrapped."""
    import textwrap

    lines = ["exit codes:"]
    for e in EXIT_CODES:
        lines += textwrap.wrap(
            e.meaning, width, initial_indent=f"  {e.code:>3}  ", subsequent_indent=" " * 7
        )
    return "\n".join(lines)
