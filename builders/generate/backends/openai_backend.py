"""The `openai` backend: any OpenAI-compatible chat server, above all `vllm serve`.

Requests go out concurrently (at most `max_concurrency` in flight) from an asyncio loop
in a background thread, round-robin over one or more base URLs (replicas). Failed tries
are retried with exponential backoff on 5xx, 429, timeouts and connection errors, each
retry on the next replica; other 4xx answers (a prompt too long for the context, a bad
schema) fail at once. A request that still fails becomes a response with `error` and
`attempts`, never an exception, so `requests = responses` holds even when the server
dies mid-run.

`generate` is a plain generator: it pulls requests from the caller's iterable and yields
responses as they complete, all in the caller's thread, so the caller can store each
one at once and the iterable may use thread-bound resources (an SQLite cache).

The `openai` package is imported when the first request is sent, not on import.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import logging
import queue
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from typing import Any

from vlm_autodrive.builders.core.errors import InputError
from vlm_autodrive.builders.generate.backends.base import (
    Completion,
    GenerationRequest,
    GenerationResponse,
    split_reasoning,
)
from vlm_autodrive.builders.generate.backends.common import (
    BackendUnavailable,
    check_constraint,
    even_split,
    fold_system_prompt,
)

__all__ = ["BackendUnavailable", "OpenAIBackend"]

log = logging.getLogger(__name__)

_RETRY_STATUS = {408, 409, 429}  # plus every 5xx


class OpenAIBackend:
    """OpenAI-compatible chat backend implementing the `Backend` protocol.

    `model` is the served model name sent with each request; `model_id` (default
    `model`) is the backend-independent id for cache keys and provenance. `base_urls`
    are replicas serving the same model ("http://host:8000/v1"); `max_concurrency` is
    the number of requests in flight over all of them. `timeout` is the deadline of
    one whole try in seconds (connect, send, and the entire answer, however slowly it
    comes); a request makes at most `1 + max_retries` tries, sleeping
    `backoff * 2**k` seconds (with jitter) before retry k+1, so it ends, answered or as
    an `error`, within `timeout * (1 + max_retries)` plus the backoff. `constraint_style`
    "vllm" sends constraints as vLLM's `structured_outputs` field; "response_format"
    sends JSON-schema constraints the standard OpenAI way (regex and choice then fail).
    """

    def __init__(
        self,
        model: str,
        base_urls: list[str] | str,
        api_key: str = "EMPTY",
        max_concurrency: int = 64,
        timeout: float = 600.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        fold_system_prompt: bool = False,
        model_id: str | None = None,
        constraint_style: str = "vllm",
    ) -> None:
        if isinstance(base_urls, str):
            base_urls = [base_urls]
        if not base_urls:
            raise ValueError("OpenAIBackend needs at least one base URL")
        if constraint_style not in ("vllm", "response_format"):
            raise ValueError(f"unknown constraint_style {constraint_style!r}")
        self.model = model
        self.model_id = model_id or model
        self.base_urls = [u.rstrip("/") for u in base_urls]
        self.api_key = api_key
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.fold_system_prompt = fold_system_prompt
        self.constraint_style = constraint_style
        self._checked = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # Per base URL, a few clients (connection pools): httpcore scans every connection
        # of a pool for each request, so pools of 8 connections cost less CPU than one of 64.
        self._clients: list[list[Any]] = []
        self._next_url: Iterator[int] = itertools.cycle(range(len(self.base_urls)))
        self._next_shard: list[Iterator[int]] = []
        self._semaphore: asyncio.Semaphore | None = None

    # -- availability ---------------------------------------------------------------

    def check(self, timeout: float = 10.0) -> None:
        """Raise `BackendUnavailable` naming the URL when a replica does not answer
        `GET /models`, and InputError naming the models it serves when it does not serve
        `model`."""
        for url in self.base_urls:
            req = urllib.request.Request(
                f"{url}/models", headers={"Authorization": f"Bearer {self.api_key}"}
            )
            try:
                with urllib.request.urlopen(req, timeout=timeout) as r:
                    body = json.loads(r.read() or b"{}")
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = getattr(e, "reason", e)
                raise BackendUnavailable(
                    f"model server at {url} is not reachable ({reason}); "
                    "is it running, and is the URL right?"
                ) from e
            served = [m.get("id") for m in body.get("data", []) if isinstance(m, dict)]
            if served and self.model not in served:
                # It answered: the recipe names a model it lacks (bad input, exit 2).
                raise InputError(
                    f"model server at {url}",
                    f"does not serve the model {self.model!r}; it serves "
                    f"{', '.join(repr(m) for m in served)}: name one of them in the recipe's "
                    "model (or served_model_name)",
                )
        self._checked = True

    # -- generation -----------------------------------------------------------------

    def generate(self, requests: Iterable[GenerationRequest]) -> Iterator[GenerationResponse]:
        """Yield one response per request as they complete (not in input order).

        Raises `BackendUnavailable` before sending anything when a server is down.
        """
        if not self._checked:
            self.check()
        loop = self._start_loop()
        results: queue.Queue[GenerationResponse] = queue.Queue()
        # Keep twice the concurrency submitted, so the servers never wait on the caller,
        # while the caller's iterable is consumed lazily.
        window = 2 * self.max_concurrency
        futures: set[concurrent.futures.Future] = set()
        outstanding = 0  # submitted, response not yet yielded
        source = iter(requests)
        exhausted = False
        try:
            while True:
                while not exhausted and outstanding < window:
                    request = next(source, None)
                    if request is None:
                        exhausted = True
                        break
                    fut = asyncio.run_coroutine_threadsafe(self._one(request, results), loop)
                    futures.add(fut)
                    fut.add_done_callback(futures.discard)
                    outstanding += 1
                if not outstanding:
                    return
                response = self._next_result(results)
                outstanding -= 1
                yield response
        finally:
            for fut in list(futures):  # the caller stopped early: drop what is in flight
                fut.cancel()

    def _next_result(self, results: queue.Queue) -> GenerationResponse:
        while True:
            try:
                return results.get(timeout=1.0)
            except queue.Empty:
                # Every request puts exactly one response; only a dead loop breaks that.
                if self._thread is None or not self._thread.is_alive():
                    raise RuntimeError("the backend's event loop thread died") from None

    async def _one(self, request: GenerationRequest, results: queue.Queue) -> None:
        try:
            async with self._semaphore:
                response = await self._send(request)
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # a bug here must not leave the caller waiting
            log.exception("request %s failed unexpectedly", request.request_id)
            response = GenerationResponse(request.request_id, error=_describe(e))
        results.put(response)

    async def _send(self, request: GenerationRequest) -> GenerationResponse:
        import openai

        try:
            body = self._request_body(request)
        except ValueError as e:
            return GenerationResponse(request.request_id, error=str(e), attempts=1)
        attempts = 0
        while True:
            index = next(self._next_url)
            client = self._clients[index][next(self._next_shard[index])]
            attempts += 1
            try:
                # A raw POST of a plain dict, read back as text: the SDK's typed
                # `chat.completions.create` walks every message to transform it and builds
                # pydantic models of the answer, ~1 ms of CPU a request, which caps
                # throughput at a few hundred requests/s. Errors, timeouts and
                # connection handling are the SDK's either way.
                # `timeout` is the whole try (connect, send, every byte of the answer):
                # the SDK's own timeout is per read, so a server dripping a byte a second
                # would hold a request for ever. `wait_for` cancels the try at the deadline.
                post = client.post("/chat/completions", cast_to=str, body=body)
                text = await asyncio.wait_for(post, self.timeout)
                return _to_response(request, json.loads(text), attempts)
            except openai.APIStatusError as e:
                error = f"{self.base_urls[index]}: HTTP {e.status_code}: {_describe(e)}"
                retry = e.status_code >= 500 or e.status_code in _RETRY_STATUS
            except asyncio.TimeoutError:
                limit = f"no whole answer within {self.timeout:g} s"
                error = f"{self.base_urls[index]}: TimeoutError: {limit}"
                retry = True
            except openai.APIConnectionError as e:  # APITimeoutError is one
                error = f"{self.base_urls[index]}: {_describe(e)}"
                retry = True
            except (openai.APIError, ValueError, KeyError, TypeError, AttributeError) as e:
                # an answer that is not the chat-completions JSON: a server bug, final
                error = f"{self.base_urls[index]}: malformed answer: {_describe(e)}"
                retry = False
            if not retry or attempts > self.max_retries:
                return GenerationResponse(request.request_id, error=error, attempts=attempts)
            delay = self.backoff * 2 ** (attempts - 1) * random.uniform(0.75, 1.0)
            log.debug("retrying %s in %.2fs after %s", request.request_id, delay, error)
            await asyncio.sleep(delay)

    def _request_body(self, request: GenerationRequest) -> dict[str, Any]:
        s = request.sampling
        messages = request.messages
        if self.fold_system_prompt:
            messages = fold_system_prompt(messages)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "n": s.n,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        if s.seed is not None:
            body["seed"] = s.seed
        constraint = check_constraint(request.constraint)
        if constraint is None:
            return body
        if self.constraint_style == "vllm":
            # vLLM >= 0.11 reads `structured_outputs` ({"json"|"regex"|"choice": ...});
            # the older `guided_json`-style fields are gone in 0.32.
            body["structured_outputs"] = constraint
        elif "json" in constraint:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": constraint["json"], "strict": True},
            }
        else:
            raise ValueError(f"constraint {next(iter(constraint))!r} needs constraint_style='vllm'")
        return body

    # -- event loop -----------------------------------------------------------------

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is not None:
            return self._loop
        from openai import AsyncOpenAI

        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            # Clients and the semaphore belong to this loop; the SDK's own retries are
            # off because retries here rotate replicas and count attempts.
            shards = max(1, -(-self.max_concurrency // (8 * len(self.base_urls))))
            self._clients = [
                [
                    AsyncOpenAI(
                        base_url=u, api_key=self.api_key, timeout=self.timeout, max_retries=0
                    )
                    for _ in range(shards)
                ]
                for u in self.base_urls
            ]
            self._next_shard = [itertools.cycle(range(shards)) for _ in self.base_urls]
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
            ready.set()
            loop.run_forever()
            for clients in self._clients:
                for client in clients:
                    loop.run_until_complete(client.close())
            loop.close()

        self._thread = threading.Thread(target=run, name="openai-backend", daemon=True)
        self._thread.start()
        ready.wait()
        return self._loop

    def close(self) -> None:
        """Close the connections and stop the background loop."""
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None:
            return

        async def _cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(timeout=10)
        except Exception as e:
            log.debug("cancel on close: %s", e)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _to_response(
    request: GenerationRequest, answer: dict[str, Any], attempts: int
) -> GenerationResponse:
    """Our response from a chat-completions JSON answer."""
    choices = sorted(answer["choices"], key=lambda c: c.get("index", 0))
    usage = answer.get("usage") or {}
    per_choice = _tokens_per_choice(
        [c.get("finish_reason") for c in choices],
        usage.get("completion_tokens") or 0,
        request.sampling.max_tokens,
    )
    completions = []
    for choice, tokens in zip(choices, per_choice):
        message = choice.get("message") or {}
        # vLLM 0.32 sends `reasoning`; older vLLM and other servers `reasoning_content`.
        server_reasoning = message.get("reasoning")
        if server_reasoning is None:
            server_reasoning = message.get("reasoning_content")
        reasoning, text = split_reasoning(message.get("content") or "", server_reasoning)
        completions.append(
            Completion(
                text=text,
                reasoning=reasoning,
                finish_reason=choice.get("finish_reason"),
                completion_tokens=tokens,
            )
        )
    return GenerationResponse(
        request_id=request.request_id,
        completions=completions,
        prompt_tokens=usage.get("prompt_tokens") or 0,
        attempts=attempts,
    )


def _tokens_per_choice(finish_reasons: list[str | None], total: int, max_tokens: int) -> list[int]:
    """Completion tokens of each choice; the API reports only their sum.

    A choice cut at the limit has exactly `max_tokens`; the rest of the sum is shared
    evenly by the others (exact when at most one choice stopped early).
    """
    known = [max_tokens if f == "length" else None for f in finish_reasons]
    unknown = [i for i, k in enumerate(known) if k is None]
    shares = iter(even_split(total - sum(k for k in known if k is not None), len(unknown)))
    return [k if k is not None else next(shares) for k in known]


def _describe(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:1000]}"
