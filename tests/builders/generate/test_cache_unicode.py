"""A server answer holding a lone surrogate (invalid Unicode) is kept as a counted parse
failure, not a crash of the SQLite cache write; warm and cold builds see the same text."""

from __future__ import annotations

import pytest

from vlm_autodrive.builders.generate.backends.base import (
    Completion,
    GenerationRequest,
    GenerationResponse,
    Sampling,
)
from vlm_autodrive.builders.generate.cache import ResponseCache
from vlm_autodrive.builders.generate.parsing import ParseError, check_output_text
from vlm_autodrive.builders.generate.requests import checked


def test_a_lone_surrogate_is_stored_and_refused_by_the_parser(tmp_path):
    raw = GenerationResponse("k1", [Completion("A car \ud800 brakes")])
    kept = checked(raw, 1, 10_000)
    cache = ResponseCache(tmp_path / "responses.sqlite")
    cache.put_many("model", [kept])  # SQLite stores UTF-8 only: this raised before
    req = GenerationRequest("k1", [{"role": "user", "content": "q"}], Sampling())
    got = cache.get_many({"k1": req}, 1)["k1"]
    cache.close()
    assert got.completions[0].text == kept.completions[0].text  # warm == cold
    with pytest.raises(ParseError, match="U\\+FFFD"):
        check_output_text(got.completions[0].text)
