"""The documentation site builds, and its runnable examples print what the docs show.

1. `mkdocs build --strict` of mkdocs.yml (broken links, anchors, API pages that do not
   resolve, a hook that fails: all errors). Skipped, saying so, when mkdocs and its
   plugins are not installed (the `docs` extra; `make test` installs them with `dev`).
2. Every block of docs/ and README.md marked runnable is run, page by page, in a fresh
   temporary folder, in the order of the page, and the output block after it is compared
   with what the commands printed. The markers, on the line before a fence:

   - `<!-- runnable -->` before a ```bash fence: run with bash (`set -e`) in the page's
     folder, with this environment's `autodrive` first on PATH; it must exit 0, or N
     with `<!-- runnable exit=N -->`.
   - `<!-- runnable file=NAME -->` before a ```yaml (or any) fence: the block is written
     to NAME in the page's folder (a recipe the next commands use).
   - `<!-- output -->` before a ```text fence right after a runnable bash block: what
     the block printed, stdout and stderr together. A line `...` stands for any lines.

   Both sides are normalised before they are compared: progress bars dropped, absolute
   paths' folders written `/.../`, durations, sizes, rates and hex digests replaced by
   placeholders, runs of spaces made one, blank lines dropped. Counts are compared as printed.

3. Every block after `<!-- excerpt PATH -->` (docs/ and README.md) is found, as it is,
   in the file PATH of the project (a quoted declaration that the code changed would be
   stale), and README's table of the pipeline's stages is the one the site generates.

Pages whose runnable blocks take longer than ~20 s are marked slow in SLOW_PAGES.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(
    p
    for p in [ROOT / "README.md", *ROOT.glob("docs/**/*.md")]
    if re.search(r"^<!-- runnable", p.read_text(encoding="utf-8"), re.MULTILINE)
)
# Pages whose runnable blocks take more than ~20 s on the project's 2-core machine (none
# now: docs/own-data/index.md, the longest, takes ~4 s on idle cores, ~19 s at a load of ~17).
SLOW_PAGES: set[str] = set()

MARKER = re.compile(r"^<!-- (runnable|output)((?: \w+=\S+)*) -->$")
FENCE = re.compile(r"^(`{3,})(\S*)")


@dataclass
class Block:
    """One runnable block of a page: its kind (`bash` or `file`), its text, its options
    (`exit`, `file`), the output the page shows after it (None: not compared), and the
    line it starts on."""

    kind: str
    text: str
    line: int
    options: dict[str, str] = field(default_factory=dict)
    output: str | None = None


def _fenced(lines: list[str], start: int) -> tuple[str, int]:
    """The text of the fence opening at lines[start], and the index after its end."""
    m = FENCE.match(lines[start])
    assert m, f"line {start + 1}: a marker must be followed by a fenced block"
    end = next(i for i in range(start + 1, len(lines)) if lines[i].strip().startswith(m.group(1)))
    return "\n".join(lines[start + 1 : end]) + "\n", end + 1


def runnable_blocks(text: str) -> list[Block]:
    """The runnable blocks of a page, in order, each with the output block after it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i].strip())
        if not m:
            i += 1
            continue
        options = dict(o.split("=", 1) for o in m.group(2).split())
        body, after = _fenced(lines, i + 1)
        if m.group(1) == "output":
            assert blocks and blocks[-1].kind == "bash", f"line {i + 1}: output of nothing"
            blocks[-1].output = body
        else:
            kind = "file" if "file" in options else "bash"
            blocks.append(Block(kind, body, i + 2, options))
        i = after
    return blocks


TQDM = re.compile(r"\d+%\|")
ABS_PATH = re.compile(r"(?<![\w./~-])/(?:[\w.+@-]+/)+")
DURATION = re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s|min|h)\b")
SIZE = re.compile(r"\b\d+(?:\.\d+)?\s?(?:B|KB|KiB|MB|MiB|GB|GiB|bytes)\b")
RATE = re.compile(r"\b\d+(?:\.\d+)?\s?[A-Za-z]+/s\b")
HEX = re.compile(r"\b[0-9a-f]{12,64}\b")
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?\b")


def normalise(text: str) -> list[str]:
    """The lines of `text` as they are compared (see the module)."""
    out = []
    for raw in text.split("\n"):  # not splitlines(): it splits at a bar's \r too
        line = ([s for s in raw.split("\r") if s.strip()] or [""])[-1]  # a bar's last redraw
        if TQDM.search(line):
            continue
        line = DATE.sub("<time>", line)
        line = ABS_PATH.sub("/.../", line)
        line = HEX.sub("<hex>", line)
        line = RATE.sub("<rate>", line)
        line = SIZE.sub("<size>", line)
        line = DURATION.sub("<duration>", line)
        if line.strip():
            out.append(" ".join(line.split()))
    return out


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether `actual` is `expected`, a line `...` of it standing for any lines."""
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line == "..." else re.escape(line) + "\n" for line in expected
    )
    return re.fullmatch(pattern, "".join(a + "\n" for a in actual)) is not None


def _env(folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        TQDM_DISABLE="1",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        COLUMNS="100",
        NO_MKDOCS_2_WARNING="1",
    )
    return env


def run_page(page: Path, folder: Path) -> None:
    """Run every runnable block of `page` in `folder`, comparing the outputs shown."""
    rel = page.relative_to(ROOT)
    for block in runnable_blocks(page.read_text(encoding="utf-8")):
        where = f"{rel}:{block.line}"
        if block.kind == "file":
            (folder / block.options["file"]).write_text(block.text, encoding="utf-8")
            continue
        r = subprocess.run(
            ["bash", "-e", "-c", block.text],
            cwd=folder,
            env=_env(folder),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
        # bytes, not text=True: universal newlines would turn a progress bar's \r into lines
        stdout = r.stdout.decode("utf-8", errors="replace")
        want = int(block.options.get("exit", 0))
        assert r.returncode == want, f"{where}: exit {r.returncode}, not {want}:\n{stdout}"
        if block.output is not None:
            shown, printed = normalise(block.output), normalise(stdout)
            report = [
                f"{where}: the output shown differs from what the block prints now.",
                "--- shown (normalised)",
                *shown,
                "--- printed (normalised)",
                *printed,
                "--- printed as is",
                stdout,
            ]
            assert matches(shown, printed), "\n".join(report)


def _page_param(page: Path):
    rel = str(page.relative_to(ROOT))
    marks = [pytest.mark.slow] if rel in SLOW_PAGES else []
    return pytest.param(page, id=rel, marks=marks)


@pytest.mark.parametrize("page", [_page_param(p) for p in PAGES])
def test_runnable_blocks_print_what_the_docs_show(page, tmp_path):
    run_page(page, tmp_path)


EXCERPT = re.compile(r"^<!-- excerpt (\S+) -->$")


def excerpts() -> list:
    out = []
    for page in [ROOT / "README.md", *sorted(ROOT.glob("docs/**/*.md"))]:
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            m = EXCERPT.match(line.strip())
            if m:
                text, _ = _fenced(lines, i + 1)
                where = f"{page.relative_to(ROOT)}:{i + 1}"
                out.append(pytest.param(m.group(1), text, id=where))
    return out


@pytest.mark.parametrize("path, text", excerpts())
def test_quoted_code_is_in_the_file_it_quotes(path, text):
    assert text in (ROOT / path).read_text(encoding="utf-8"), f"{path} no longer holds:\n{text}"


def _mkdocs_missing() -> str | None:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except ModuleNotFoundError:
            return module
    return None


@pytest.mark.skipif(
    _mkdocs_missing() is not None,
    reason=f"{_mkdocs_missing()} is not installed: pip install -e '.[docs]' (make test has it)",
)
def test_the_site_builds_strictly(tmp_path):
    """~5 s: every page, the generated CLI and recipe reference, the API pages."""
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-5000:]
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    for name in _commands():  # every command's --help is on the page, a new one included
        assert f"usage: autodrive {name} " in cli, name


def _commands() -> list[str]:
    return _hooks().command_names()


def _hooks():
    """docs/hooks.py, the module that generates the reference pages from the code."""
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import hooks
    finally:
        sys.path.remove(str(ROOT / "docs"))
    return hooks


def test_the_readme_lists_the_pipeline_as_declared():
    """README's Layout section shows PIPELINE's stages as the docs site generates them
    (GitHub does not run the site's hooks, so the table is written out and checked)."""
    table = _hooks().stage_table()
    assert table in (ROOT / "README.md").read_text(encoding="utf-8"), (
        "README.md's stage table differs from builders/pipeline.py's PIPELINE; it now reads:\n"
        + table
    )


def test_the_normalisation_keeps_counts_and_drops_what_varies():
    printed = (
        "build folder: /tmp/pytest-of-x/pytest-1/test_a0/build\n"
        "sample videos:  33%|###  | 1/3 [00:00<00:00, 5.37video/s]\n"
        "  report: build/audit/report.md in 0.8 s, 9.1 MB, id aa5f0c66713ad6ed\n"
    )
    assert normalise(printed) == [
        "build folder: /.../build",
        "report: build/audit/report.md in <duration>, <size>, id <hex>",
    ]
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert not matches(["a", "...", "d"], ["a", "b"])
    assert not matches(["3 videos"], ["4 videos"])


def test_markers_are_read_with_their_options_and_outputs():
    text = (
        "<!-- runnable file=r.yaml -->\n```yaml\na: 1\n```\n"
        "<!-- runnable exit=2 -->\n```bash\nfalse\n```\n\n"
        "<!-- output -->\n```text\nno\n```\n"
    )
    first, second = runnable_blocks(text)
    assert (first.kind, first.options, first.text) == ("file", {"file": "r.yaml"}, "a: 1\n")
    assert (second.kind, second.options, second.output) == ("bash", {"exit": "2"}, "no\n")


def test_the_readme_audit_line_is_the_one_the_audit_page_runs():
    """README quotes one line the audit page's runnable example prints (and checks)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    page = (ROOT / "docs" / "look" / "audit.md").read_text(encoding="utf-8").splitlines()
    quoted = [line for line in readme if line.startswith("  LETTERS ")]
    assert quoted and all(line in page for line in quoted)
