"""The docs' server command for vLLM's CPU build runs as written.

The `.venv-vllm/bin/python -m vllm.entrypoints.openai.api_server ...` line of the
docs' "Evaluate" page (docs/evaluate.md; it was the README's section) is read from the
page and run as is, with `--help`
appended: vLLM imports, and every flag of the line parses (an unknown flag or a value
that does not parse would exit 2). The module is the one `local_server: true` starts,
whose real start is tested in tests/builders/generate/test_backends.py.
"""

from __future__ import annotations

import shlex
import subprocess

import pytest

from tests.conftest import REPO
from vlm_autodrive.builders.generate.backends.local_server import LocalVLLMServer

VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
PREFIX = ".venv-vllm/bin/python -m vllm.entrypoints.openai.api_server"


PAGE = REPO / "docs" / "evaluate.md"


def readme_command(prefix: str) -> str:
    """The docs page's command line starting with `prefix`, continuation lines joined."""
    lines = PAGE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(prefix))
    command = []
    for line in lines[start:]:
        command.append(line.rstrip("\\").strip())
        if not line.endswith("\\"):
            break
    return " ".join(command)


def test_the_readme_server_line_is_what_local_server_starts():
    words = shlex.split(readme_command(PREFIX))
    cmd = LocalVLLMServer("m", python="py", port=1, cpu=False).command()
    assert words[1:3] == cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert "--model" in words and "--allowed-local-media-path" in words


@pytest.mark.slow
@pytest.mark.skipif(not VLLM_PYTHON.exists(), reason=".venv-vllm is missing")
def test_the_readme_server_line_runs_in_the_vllm_environment():
    """~15 s alone, about a minute on a busy 2-core machine (vLLM's import)."""
    line = readme_command(PREFIX)
    r = subprocess.run(
        ["bash", "-c", f"{line} --help"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "--allowed-local-media-path" in r.stdout and "--media-io-kwargs" in r.stdout
