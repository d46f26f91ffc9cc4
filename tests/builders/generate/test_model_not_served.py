"""A recipe naming a model that a reachable OpenAI-compatible server does not serve is
bad input (exit 2), saying which models the server serves; not "could not be reached"
(exit 4, which stays for a server that does not answer). Against a real HTTP server
(tests/doubles/fake_server.py) through `autodrive build`; about 3 s.
"""

from __future__ import annotations

from tests.builders.generate.tiny_recipe import write_tiny_recipe
from tests.doubles.fake_server import FakeOpenAIServer
from vlm_autodrive.builders.generate.backends.local_server import free_port
from vlm_autodrive.cli import main


def test_a_model_the_server_does_not_serve_is_bad_input(tmp_path, capsys):
    with FakeOpenAIServer(model="fake-model") as server:
        recipe = write_tiny_recipe(tmp_path, server.base_url, model="no-such-model")
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
    code = main(["build", str(write_tiny_recipe(tmp_path, url)), "-q"])
    err = capsys.readouterr().err
    assert code == 4 and f"error: model server at {url} is not reachable" in err, err
