"""What rows and releases say of the building machine: nothing (builders/core/private.py)."""

from __future__ import annotations

import pytest

from vlm_autodrive.builders.core.private import shown_model_name
from vlm_autodrive.builders.generate.config import ModelConfig


@pytest.mark.parametrize(
    "model, shown",
    [
        ("meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Llama-3.1-70B-Instruct"),
        ("gpt2", "gpt2"),
        ("/srv/models/alice-llama-70b", "alice-llama-70b"),
        ("/srv/models/alice-llama-70b/", "alice-llama-70b"),
        ("./models/tiny", "tiny"),
        ("../tiny", "tiny"),
        ("~/models/tiny", "tiny"),
        ("build/models/smollm2-135m-instruct", "smollm2-135m-instruct"),
    ],
)
def test_a_model_path_is_shown_by_its_last_part_and_a_hub_id_whole(model, shown):
    assert shown_model_name(model) == shown


def test_a_local_folder_of_one_part_is_shown_by_its_name(tmp_path, monkeypatch):
    (tmp_path / "org").mkdir()  # `org/x` is a Hub id's shape, but here it is a folder
    (tmp_path / "org" / "x").mkdir()
    monkeypatch.chdir(tmp_path)
    assert shown_model_name("org/x") == "x"


def test_rows_never_name_the_path_a_server_was_started_with():
    """vLLM serves a model under the path it was started with unless told a name; that
    folder need not exist on the building machine, and the rows' `generator` is
    published."""
    cfg = ModelConfig(
        backend="openai",
        model="/home/alice/models/llama-70b",
        base_urls=["http://127.0.0.1:8000/v1"],
    )
    assert cfg.model_id == "llama-70b@unpinned"
    hub = ModelConfig(
        backend="openai", model="org/llama", revision="abc", base_urls=["http://h/v1"]
    )
    assert hub.model_id == "org/llama@abc"
