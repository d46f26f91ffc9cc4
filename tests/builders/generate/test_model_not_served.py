"""A recipe naming a model that a reachable OpenAI-compatible server does not serve is
bad input (exit 2), saying which models the server serves; not "could not be reached"
(exit 4, which stays for a server that does not answer). Against a real HTTP server
(tests/doubles/fake_server.py) through `autodrive build`; about 3 s.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.doubles.fake_server import FakeOpenAIServer
from vlm_autodrive.builders.generate.backends.local_server import free_port
from vlm_autodrive.cli import main


def write_recipe(root: Path, base_url: str, model: str) -> Path:
    recipe = {
        "manifest": str(root / "sample" / "manifest.jsonl"),
        "build_dir": str(root / "build"),
        "sample": {"videos": 3, "seed": 3, "duration": 4.0, "width": 64, "height": 48},
        "chunk": {"window": 2.0, "stride": 1.0, "margin": 0.5, "mode": "copy"},
        "rules": {"test_per_class": 1, "on_short": "take_available"},
        "generate": {
            "models": {"m": {"model": model, "base_urls": [base_url], "max_retries": 0}},
            "configs": {"caption_vlm": {"model": "m"}},
        },
    }
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_a_model_the_server_does_not_serve_is_bad_input(tmp_path, capsys):
    with FakeOpenAIServer(model="fake-model") as server:
        recipe = write_recipe(tmp_path, server.base_url, "no-such-model")
        code = main(["build", str(recipe), "-q"])
        err = capsys.readouterr().err
        asked = server.requests
    assert code == 2, err
    assert err.startswith(f"autodrive: model server at {server.base_url}: ") or (
        f"\nautodrive: model server at {server.base_url}: " in err
    ), err
    assert "does not serve the model 'no-such-model'; it serves 'fake-model'" in err, err
    assert "Traceback" not in err and asked == 0


def test_a_server_that_does_not_answer_is_still_unreachable(tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}/v1"
    code = main(["build", str(write_recipe(tmp_path, url, "fake-model")), "-q"])
    err = capsys.readouterr().err
    assert code == 4 and f"error: model server at {url} is not reachable" in err, err
