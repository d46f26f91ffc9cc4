"""The response cache key: each part changed alone is a miss, the same request a hit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from vlm_autodrive.builders.generate.backends.base import (
    Completion,
    GenerationRequest,
    GenerationResponse,
    Sampling,
)
from vlm_autodrive.builders.generate.cache import ResponseCache, request_key

MODEL = "org/model@rev1"
BASE = GenerationRequest(
    "",
    [
        {"role": "system", "content": "You write questions."},
        {
            "role": "user",
            "content": [
                {"type": "video_url", "video_url": {"url": "clip:clips/v1/v1_0000000.mp4"}},
                {"type": "text", "text": "Describe the clip."},
            ],
        },
    ],
    Sampling(temperature=0.6, top_p=0.95, max_tokens=256, n=2, seed=11),
    {"json": {"type": "object"}},
    {"clip": "v1_0000000", "video_sha256": "aa" * 32},
)


def changed() -> dict[str, tuple[str, GenerationRequest, int]]:
    """One variant of BASE per key part: (model id, request, attempt)."""
    s = BASE.sampling
    msgs = [BASE.messages[0], {"role": "user", "content": "Describe the clip!"}]
    return {
        "model revision": ("org/model@rev2", BASE, 0),
        "temperature": (MODEL, replace(BASE, sampling=replace(s, temperature=0.7)), 0),
        "top_p": (MODEL, replace(BASE, sampling=replace(s, top_p=0.9)), 0),
        "max_tokens": (MODEL, replace(BASE, sampling=replace(s, max_tokens=257)), 0),
        "seed": (MODEL, replace(BASE, sampling=replace(s, seed=12)), 0),
        "n": (MODEL, replace(BASE, sampling=replace(s, n=3)), 0),
        "constraint": (MODEL, replace(BASE, constraint={"regex": "A|B"}), 0),
        "rendered message": (MODEL, replace(BASE, messages=msgs), 0),
        "clip": (MODEL, replace(BASE, key_extra={**BASE.key_extra, "clip": "v1_0005500"}), 0),
        "clip content": (
            MODEL,
            replace(BASE, key_extra={**BASE.key_extra, "video_sha256": "bb" * 32}),
            0,
        ),
        "attempt": (MODEL, BASE, 1),
    }


def test_each_key_part_changed_alone_is_a_miss(tmp_path: Path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    key = request_key(MODEL, BASE)
    comps = [Completion("one", None, "stop", 1), Completion("two", None, "stop", 1)]
    cache.put_many(MODEL, [GenerationResponse(key, comps, prompt_tokens=5)])
    # A hit: the same request again, with any request id (the id is not part of the key).
    assert request_key(MODEL, replace(BASE, request_id="other")) == key
    hit = cache.get_many([key], 2)[key]
    assert [c.text for c in hit.completions] == ["one", "two"] and hit.prompt_tokens == 5
    variants = changed()
    keys = {part: request_key(m, r, a) for part, (m, r, a) in variants.items()}
    assert len(set(keys.values())) == len(keys) and key not in keys.values()
    for part, k in keys.items():
        n = variants[part][1].sampling.n
        assert cache.get_many([k], n) == {}, part
    # n asks for more samples than are stored: a miss even under the same key.
    assert cache.get_many([key], 3) == {}
    cache.close()
