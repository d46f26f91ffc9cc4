"""The Python API (vlm_autodrive/api.py) as a notebook user calls it.

Its docstring examples are run as written (doctest), from a working folder that holds a
tiny `recipes/quickstart.yaml` (6 synthetic videos of 6 s, 96x64; two model splits): the
examples' paths are the README's. The model is the scripted backend
(tests/doubles/scripted.py) put in place of the backend factory, as the incremental
build tests do. Besides: the plan's numbers are what the run then sends, the plan is the
dry run's printed table, bad input raises with the file and key, `evaluate` runs against
a stand-in OpenAI server, and `import vlm_autodrive` imports nothing heavy.
"""

from __future__ import annotations

import doctest
import shutil
import subprocess
import sys

import pytest

from tests.doubles.scripted import ScriptedBackend
from vlm_autodrive import api, cli
from vlm_autodrive.builders.generate.backends import factory

RECIPE = """\
manifest: ../build/sample/manifest.jsonl
build_dir: ../build/quickstart
sample: {videos: 6, seed: 0, duration: 6.0, width: 96, height: 64, fps: 10.0, gop: 10}
chunk: {window: 3.0, stride: 3.0, margin: 0.5, mode: copy, workers: 1}
rules: {configs: [mcq, caption_metadata], test_per_class: 1, on_short: take_available}
generate:
  models:
    vlm: {model: scripted, revision: "1", base_urls: ["http://127.0.0.1:9/v1"]}
    text: {model: scripted, revision: "1", base_urls: ["http://127.0.0.1:9/v1"]}
  configs:
    caption_vlm: {model: vlm}
    vqa: {model: text}
"""


class Counting(ScriptedBackend):
    """The scripted model; `sent` (inherited) lists every request id it was sent."""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working folder with recipes/quickstart.yaml and its finished build/quickstart
    (built with the scripted model)."""
    root = tmp_path_factory.mktemp("api")
    (root / "recipes").mkdir()
    (root / "recipes" / "quickstart.yaml").write_text(RECIPE)
    backend = Counting()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setattr(factory, "open_backend", lambda cfg, stack, **kw: backend)
        result = api.run("recipes/quickstart.yaml", out=None, progress=False)
        assert result.exit_code == 0, result.lines
    return root


def test_the_docstring_examples_run_as_written(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(factory, "open_backend", lambda cfg, stack, **kw: Counting())
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [t for t in finder.find(api) if t.examples]
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0
    names = {t.name.rsplit(".", 1)[-1] for t in tests}
    assert {"open_recipe", "plan", "run", "load", "show", "mix", "publish"} <= names
    assert (workdir / "releases" / "v0.1.0" / "provenance.json").is_file()


def test_the_plan_counts_what_the_run_then_sends(workdir, tmp_path, monkeypatch):
    """A fresh build folder: the plan's requests to send per split are those sent."""
    monkeypatch.chdir(workdir)
    recipe = api.open_recipe("recipes/quickstart.yaml", {"build_dir": str(tmp_path / "b")})
    planned = api.plan(recipe)
    assert not (tmp_path / "b").exists(), "the plan wrote something"
    backend = Counting()
    monkeypatch.setattr(factory, "open_backend", lambda cfg, stack, **kw: backend)
    result = api.run(recipe, out=None, progress=False)
    sent = {r.name: r.sent for r in result.model_splits}
    assert {k: v["to_send"] for k, v in planned.requests.items()} == sent
    assert planned.to_send == len(backend.sent) > 0
    assert planned.gpu_hours is None  # no throughput in the recipe
    assert planned.chunk.cut == 6 and planned.ingest.rejects == 0
    assert result.configs["mcq"] == {"train": 4, "test": 3}
    assert [r.cached for r in api.plan(recipe).model_splits] == list(sent.values())


def test_the_plan_is_the_dry_runs_printed_table(workdir, capsys, monkeypatch):
    monkeypatch.chdir(workdir)
    planned = api.plan(api.open_recipe("recipes/quickstart.yaml"))
    capsys.readouterr()
    assert cli.main(["build", "recipes/quickstart.yaml", "--dry-run"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("[taxonomy] ")
    assert printed[1:] == "\n".join(planned.lines).splitlines()


def test_bad_input_raises_naming_the_file_and_key(workdir, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(RECIPE.replace("window: 3.0", "window: -1"))
    shutil.copytree(workdir / "build" / "sample", tmp_path.parent / "build" / "sample",
                    dirs_exist_ok=True)  # fmt: skip
    with pytest.raises(ValueError, match=r"bad\.yaml: chunk\.window"):
        api.open_recipe(bad)
    with pytest.raises(ValueError, match="no config 'nope'"):
        api.show(workdir / "build" / "quickstart", "nope")
    with pytest.raises(FileNotFoundError, match="not a Hub dataset id"):
        api.load(tmp_path / "missing", "mcq")
    with pytest.raises(TypeError):
        api.run(api.open_recipe(workdir / "recipes" / "quickstart.yaml"), colour=True)


def test_evaluate_against_an_openai_server(workdir, tmp_path):
    from tests.doubles.fake_server import FakeOpenAIServer

    build = workdir / "build" / "quickstart"
    with FakeOpenAIServer(model="served-vlm") as server:
        res = api.evaluate("served-vlm", build, base_url=server.base_url, out=tmp_path / "e")
        asked = len(server.bodies)
    assert asked == 3 and res.generated == 3 and res.errors == 0  # the 3 mcq test rows
    assert res.report["results"][0]["metrics"]["n"] == 3
    assert (tmp_path / "e" / "report.md").is_file()


def test_import_is_cheap():
    code = (
        "import sys, vlm_autodrive as ad\n"
        "heavy = {'datasets', 'pyarrow', 'av', 'pydantic', 'vlm_autodrive.api'}\n"
        "assert not heavy & set(sys.modules), heavy & set(sys.modules)\n"
        "assert callable(ad.open_recipe) and 'vlm_autodrive.api' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_exports_are_the_apis():
    import vlm_autodrive

    assert set(vlm_autodrive.__all__) - {"__version__"} == set(api.__all__)
    assert vlm_autodrive.load is api.load
    with pytest.raises(AttributeError):
        vlm_autodrive.nothing  # noqa: B018
