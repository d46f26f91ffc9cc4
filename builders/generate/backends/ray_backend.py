"""The `ray` backend: the cache misses through `ray.data.llm` on a Ray cluster.

In: `GenerationRequest`s (only the misses: the response cache stays on the driver). Out:
one `GenerationResponse` per request, yielded as Ray Data's batches return, so the stage
commits each batch to the cache at once and a killed job loses at most the batches in
flight. Two routes, by the model config:

- `base_urls` set: `HttpRequestProcessorConfig` against OpenAI-compatible servers
  (`vllm serve` replicas, vLLM's data-parallel server), `ray.replicas` HTTP actors each
  sending `ray.batch_size` requests of a batch at once, round-robin over the URLs;
- no `base_urls`: `vLLMEngineProcessorConfig`, vLLM inside the Ray cluster (GPU nodes;
  `ray.replicas` engines of `tensor_parallel_size` GPUs). Written against Ray 2.60's
  source, **not run here** (no GPU): see the README.

Ray 2.60's HTTP processor has no `should_continue_on_error`: its stage raises for the
whole batch when a row still fails after its retries, and parses every answer as JSON.
So the HTTP session it is given (`session_factory`, its documented hook) does the sending:
each request is retried as the `openai` backend retries (5xx, 408, 409, 429, timeouts,
connection errors; backoff; the next replica) and always answers the stage with one row
`{raw, error, attempts}`: a request that still fails is an `error` response of its own,
never a failed batch, and `samples = kept + failures` holds as with the other backends.
Bodies travel as JSON text, because Arrow would merge the JSON schemas and message parts
of different rows into one struct type, adding null keys to each.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Iterable, Iterator
from typing import Any

from vlm_autodrive.builders.generate.backends.base import (
    Completion,
    GenerationRequest,
    GenerationResponse,
    split_reasoning,
)
from vlm_autodrive.builders.generate.backends.openai_backend import OpenAIBackend, _to_response

_RETRY_STATUS = {408, 409, 429}  # plus every 5xx, as the openai backend


class RayBackend:
    """The misses of the cache through a `ray.data.llm` processor (see the module doc).

    `window` requests make one Ray dataset at a time: memory on the driver stays bounded
    and results stream back as batches finish.
    """

    def __init__(
        self,
        model: str,
        model_id: str,
        base_urls: list[str] | None = None,
        api_key: str = "EMPTY",
        replicas: int = 1,
        batch_size: int = 16,
        timeout: float = 600.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        engine: dict[str, Any] | None = None,
        window: int = 100_000,
    ) -> None:
        self.model, self.model_id = model, model_id
        self.base_urls = [u.rstrip("/") for u in base_urls or []]
        self.replicas, self.batch_size, self.window = replicas, batch_size, window
        self.engine = engine  # vLLMEngineProcessorConfig fields, when no base_urls
        # The openai backend builds the chat-completions bodies and reads the answers, so
        # both backends send and parse the very same JSON.
        self._http = (
            OpenAIBackend(model, self.base_urls, api_key=api_key, max_retries=max_retries)
            if self.base_urls
            else None
        )
        self._session = _SessionFactory(self.base_urls, api_key, timeout, max_retries, backoff)

    def check(self) -> None:
        """Raise `BackendUnavailable` naming the URL when a server does not answer."""
        if self._http is not None:
            self._http.check()

    def generate(self, requests: Iterable[GenerationRequest]) -> Iterator[GenerationResponse]:
        """Yield one response per request as Ray's batches return (not in input order)."""
        from vlm_autodrive.builders.core.ray_cluster import connect

        connect()
        source = iter(requests)
        while True:
            window = list(itertools.islice(source, self.window))
            if not window:
                return
            if self._http is not None:
                yield from self._http_window(window)
            else:
                yield from self._engine_window(window)

    # -- HTTP: HttpRequestProcessorConfig ---------------------------------------------

    def _http_window(self, requests: list[GenerationRequest]) -> Iterator[GenerationResponse]:
        import ray.data
        from ray.data.llm import HttpRequestProcessorConfig, build_processor

        by_id, items = {}, []
        for r in requests:
            try:
                body = self._http._request_body(r)
            except ValueError as e:  # a malformed constraint: this request only
                yield GenerationResponse(r.request_id, error=str(e), attempts=1)
                continue
            by_id[r.request_id] = r
            items.append({"request_id": r.request_id, "body": json.dumps(body)})
        if not items:
            return
        config = HttpRequestProcessorConfig(
            url=f"{self.base_urls[0]}/chat/completions",  # the session picks the replica
            batch_size=self.batch_size,
            concurrency=(self.replicas, self.replicas),  # all of them from the start
            session_factory=self._session,
        )
        processor = build_processor(config, preprocess=_http_payload, postprocess=_http_answer)
        blocks = max(1, min(len(items) // self.batch_size, 4 * self.replicas * 8))
        ds = processor(ray.data.from_items(items, override_num_blocks=blocks))
        for row in ds.iter_rows():
            request = by_id[row["request_id"]]
            attempts = int(row["attempts"])
            if row["error"]:
                yield GenerationResponse(request.request_id, error=row["error"], attempts=attempts)
                continue
            try:
                yield _to_response(request, json.loads(row["raw"]), attempts)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                error = f"malformed answer: {type(e).__name__}: {e}"
                yield GenerationResponse(request.request_id, error=error, attempts=attempts)

    # -- vLLM inside the cluster: vLLMEngineProcessorConfig (not run here) ----------------

    def _engine_window(self, requests: list[GenerationRequest]) -> Iterator[GenerationResponse]:
        import ray.data
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig

        # The engine stage keeps one output per row: `n` samples are `n` rows seeded
        # s, s+1, ..., s+n-1, as vLLM seeds the samples of one request.
        items, by_id = [], {}
        for r in requests:
            by_id[r.request_id] = r
            for i in range(r.sampling.n):
                items.append({"request_id": r.request_id, "sample": i, **engine_row(r, i)})
        config = vLLMEngineProcessorConfig(
            **self.engine,
            batch_size=self.batch_size,
            concurrency=self.replicas,
            should_continue_on_error=True,
        )
        processor = build_processor(config, preprocess=_engine_input, postprocess=_engine_output)
        ds = processor(ray.data.from_items(items))
        samples: dict[str, dict[int, dict]] = {}
        for row in ds.iter_rows():
            got = samples.setdefault(row["request_id"], {})
            got[int(row["sample"])] = row
            request = by_id[row["request_id"]]
            if len(got) == request.sampling.n:
                yield engine_response(request, [got[i] for i in range(request.sampling.n)])
                del samples[row["request_id"]]

    def close(self) -> None:
        """Nothing to release: the Ray session is the build's (closed at its exit)."""


def _http_payload(row: dict) -> dict:
    return {"payload": {"body": row["body"]}}


def _http_answer(row: dict) -> dict:
    answer = row["http_response"]
    return {"request_id": row["request_id"], **answer}


def engine_row(request: GenerationRequest, sample: int) -> dict:
    """Sample `sample` of a request as the engine stage reads it (JSON text columns)."""
    s = request.sampling
    params: dict[str, Any] = {
        "temperature": s.temperature,
        "top_p": s.top_p,
        "max_tokens": s.max_tokens,
        "seed": None if s.seed is None else s.seed + sample,
    }
    if request.constraint:
        # vLLM's StructuredOutputsParams takes a JSON schema as text too.
        kind, value = next(iter(request.constraint.items()))
        params["structured_outputs"] = {kind: json.dumps(value) if kind == "json" else value}
    return {"messages": json.dumps(request.messages), "params": json.dumps(params)}


def _engine_input(row: dict) -> dict:
    return {"messages": json.loads(row["messages"]), "sampling_params": json.loads(row["params"])}


def _engine_output(row: dict) -> dict:
    return {
        "request_id": row["request_id"],
        "sample": row["sample"],
        "text": row.get("generated_text") or "",
        "tokens": int(row.get("num_generated_tokens") or 0),
        "prompt_tokens": int(row.get("num_input_tokens") or 0),
        "error": row.get("__inference_error__") or "",
    }


def engine_response(request: GenerationRequest, rows: list[dict]) -> GenerationResponse:
    """The response of one request from its `n` engine rows (an error if any failed)."""
    errors = [r["error"] for r in rows if r.get("error")]
    if errors:
        return GenerationResponse(request.request_id, error=errors[0], attempts=1)
    completions = []
    for r in rows:
        reasoning, text = split_reasoning(r["text"])
        # The engine stage reports no finish reason: a sample that used every token was cut.
        cut = r["tokens"] >= request.sampling.max_tokens
        completions.append(Completion(text, reasoning, "length" if cut else "stop", r["tokens"]))
    return GenerationResponse(request.request_id, completions, rows[0]["prompt_tokens"])


class _SessionFactory:
    """What `HttpRequestProcessorConfig.session_factory` calls once per batch, in the HTTP
    actor: a session whose `post` starts the request at once (so a batch's requests are
    in flight together) and answers with one `{raw, error, attempts}` row."""

    def __init__(self, base_urls, api_key, timeout, max_retries, backoff):
        self.base_urls, self.api_key, self.timeout = base_urls, api_key, timeout
        self.max_retries, self.backoff = max_retries, backoff

    def __call__(self) -> _Session:
        return _Session(self)


class _Session:
    _turn = itertools.count()  # per actor process: spreads batches over the replicas

    def __init__(self, factory: _SessionFactory):
        self.f = factory
        self.client = None

    async def __aenter__(self) -> _Session:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.f.timeout)
        headers = {"Authorization": f"Bearer {self.f.api_key}"}
        self.client = aiohttp.ClientSession(timeout=timeout, headers=headers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()

    def post(self, url: str, headers: dict, data: str) -> asyncio.Task:
        return asyncio.ensure_future(self._send(json.loads(data)["body"]))

    async def _send(self, body: str) -> _Answer:
        import aiohttp

        attempts, start = 0, next(self._turn)
        while True:
            url = self.f.base_urls[(start + attempts) % len(self.f.base_urls)]
            attempts += 1
            try:
                async with self.client.post(
                    f"{url}/chat/completions",
                    data=body,
                    headers={"Content-Type": "application/json"},
                ) as r:
                    text = await r.text()
                    if r.status == 200:
                        return _Answer(text, "", attempts)
                    error = f"{url}: HTTP {r.status}: {' '.join(text.split())[:1000]}"
                    retry = r.status >= 500 or r.status in _RETRY_STATUS
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                error, retry = f"{url}: {type(e).__name__}: {e}", True
            if not retry or attempts > self.f.max_retries:
                return _Answer("", error, attempts)
            await asyncio.sleep(self.f.backoff * 2 ** (attempts - 1) * random.uniform(0.75, 1))


class _Answer:
    """The one row the HTTP stage reads back: status 200, JSON of plain strings."""

    status, reason = 200, "OK"

    def __init__(self, raw: str, error: str, attempts: int):
        self.row = {"raw": raw, "error": error, "attempts": attempts}

    async def json(self) -> dict:
        return self.row

    async def __aenter__(self) -> _Answer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None
