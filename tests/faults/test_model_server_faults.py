"""A model server that misbehaves (hangs, drips a byte at a time, answers 500, sends
invalid JSON, drops the connection, returns fewer choices, sends a huge body), reached
through the real `openai` client: every request ends, answered or as a counted `error`,
within `timeout x (retries + 1)` plus the backoff; none is lost or answered twice.

About 25 s (the hang and drip cases wait out their deadlines)."""

from __future__ import annotations

import time

import pytest

from tests.doubles.misbehaving_server import MisbehavingServer
from vlm_autodrive.builders.generate.backends.base import GenerationRequest, Sampling
from vlm_autodrive.builders.generate.backends.openai_backend import OpenAIBackend

TIMEOUT, RETRIES, BACKOFF = 1.5, 1, 0.1
REQUESTS = 6
# Slack for the start-up check and scheduling on a machine busy with other work.
SLACK = 5.0

# mode -> (every request an error?, tries each: retried modes use every try)
CASES = {
    "hang": (True, RETRIES + 1),
    "drip": (True, RETRIES + 1),
    "status500": (True, RETRIES + 1),
    "drop": (True, RETRIES + 1),
    "invalid_json": (True, 1),  # a server bug, not a passing fault: not retried
    "fewer": (False, 1),  # the stage counts it (requests.py: "returned 1 of 2 choices")
    "huge": (False, 1),  # the stage cuts it (requests.py: oversized output)
}


def requests(n: int = REQUESTS, samples: int = 2) -> list[GenerationRequest]:
    messages = [{"role": "user", "content": "Describe the clip."}]
    return [GenerationRequest(f"r{i}", messages, Sampling(n=samples)) for i in range(n)]


@pytest.mark.parametrize("mode", list(CASES))
def test_a_misbehaving_server_ends_in_counted_answers_within_the_deadline(mode):
    is_error, tries = CASES[mode]
    # A huge body must be read whole, not cut by the deadline: give it time on a busy box.
    timeout = 20.0 if mode == "huge" else TIMEOUT
    with MisbehavingServer(mode=mode, drip_every=0.4, huge_chars=4_000_000) as server:
        backend = OpenAIBackend(
            "fake-model",
            server.base_url,
            max_concurrency=REQUESTS,  # all at once: the bound is one request's
            timeout=timeout,
            max_retries=RETRIES,
            backoff=BACKOFF,
        )
        with backend:
            start = time.monotonic()
            got = list(backend.generate(requests()))
            elapsed = time.monotonic() - start
    bound = timeout * (RETRIES + 1) + BACKOFF * (2**RETRIES) + SLACK
    assert elapsed < bound, f"{mode}: {elapsed:.1f} s, more than {bound:.1f} s"
    assert sorted(r.request_id for r in got) == [f"r{i}" for i in range(REQUESTS)]
    assert server.chat_requests == REQUESTS * tries
    assert all((r.error is not None) == is_error for r in got), got[0].error
    assert all(r.attempts == tries for r in got)
    if mode in ("hang", "drip"):
        assert all(f"no whole answer within {TIMEOUT:g} s" in r.error for r in got)
    if mode == "fewer":
        assert all(len(r.completions) == 1 for r in got)
    if mode == "huge":
        assert all(len(r.completions[0].text) == server.huge_chars for r in got)


def test_a_slow_drip_longer_than_the_timeout_is_cut_at_the_deadline():
    """The issue's case: headers, then a byte every 2 s, `timeout: 5`: each read is well
    within the SDK's per-read timeout, yet the try must end at 5 s."""
    with MisbehavingServer(mode="drip", drip_every=2.0) as server:
        backend = OpenAIBackend("fake-model", server.base_url, timeout=5, max_retries=0)
        with backend:
            start = time.monotonic()
            (got,) = backend.generate(requests(1, samples=1))
            elapsed = time.monotonic() - start
    assert got.error and "no whole answer within 5 s" in got.error
    assert 4.5 < elapsed < 5 + SLACK
