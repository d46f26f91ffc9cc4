"""A rule build with stand-in clips and a `mix-quick` config, shared by the export tests
(exports read rows and check clip paths; no video is decoded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders.small_builds import recipe, rule_build
from vlm_autodrive.builders.mix.stage import mix

MIXTURE = """
    name: quick
    seed: 0
    conversation:
      system_prompt: driving_assistant
    components:
      - config: mcq
        all: true
      - config: caption_metadata
        count: 4
"""


@pytest.fixture(scope="package")
def build(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("export")
    folder = rule_build(tmp / "build", videos=16)
    mix(recipe(tmp, MIXTURE, "quick.yaml"), folder)
    return folder
