"""A model's `base_urls` are checked when the recipe loads: a value that is not an
http(s) URL is refused naming the recipe file and the key (`...base_urls.0`), exit 2,
before ingest, chunking and the rule configs run (a QA's `notaurl` got as far as the
first request: `unknown url type: 'notaurl/models'`, no file or key; `ftp://...` waited
for a timeout and exited 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlm_autodrive.builders.recipe import load_recipe
from vlm_autodrive.cli import main

RECIPE = """\
manifest: manifest.jsonl
build_dir: build
rules: {{configs: [mcq], test_per_class: 3, seed: 4}}
generate:
  models: {{text: {{model: some-org/m, base_urls: ["{url}"]}}}}
  configs:
    vqa: {{model: text}}
"""


def write(folder: Path, url: str) -> Path:
    path = folder / "RECIPE.yaml"
    path.write_text(RECIPE.format(url=url))
    return path


@pytest.mark.parametrize(
    "url", ["notaurl", "ftp://127.0.0.1:8378/v1", "http://", "127.0.0.1:8000/v1", "http://h:x/v1"]
)
def test_a_base_url_that_is_not_http_is_refused_naming_file_and_key(tmp_path, url):
    path = write(tmp_path, url)
    with pytest.raises(ValueError) as e:
        load_recipe(path)
    assert str(e.value).startswith(
        f"{path}: generate.models.text.base_urls.0: not an http(s) URL: {url!r}"
    )


def test_an_override_is_checked_the_same_way(tmp_path):
    path = write(tmp_path, "http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match=r"base_urls\.0: not an http\(s\) URL: 'notaurl'"):
        load_recipe(path, ["generate.models.text.base_urls=[notaurl]"])


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/v1", "https://h.example/v1/", "http://[::1]:8000/v1"]
)
def test_http_and_https_urls_load(tmp_path, url):
    recipe = load_recipe(write(tmp_path, url))
    assert recipe.generate.models["text"].base_urls == [url]


def test_the_build_stops_at_the_recipe_with_exit_2_before_any_work(tmp_path, capsys):
    path = write(tmp_path, "notaurl")
    (tmp_path / "manifest.jsonl").write_text("")  # never read: the recipe is refused first
    code = main(["build", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{path}: generate.models.text.base_urls.0: not an http(s) URL: 'notaurl'" in err
    assert "Traceback" not in err
    assert not (tmp_path / "build").exists()  # nothing ingested or chunked
