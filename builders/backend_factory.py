"""Opening the backend a model config names (the only place that knows the backends)."""

from __future__ import annotations

import os
from contextlib import ExitStack

from .backends.base import Backend
from .generate_config import ModelConfig


def open_backend(cfg: ModelConfig, stack: ExitStack) -> Backend:
    """A ready backend for `cfg`; servers or engines it starts are closed by `stack`."""
    if cfg.backend == "vllm":
        from .backends.vllm_backend import VLLMBackend

        engine_args = dict(cfg.engine_args)
        if cfg.reasoning_parser:
            engine_args.setdefault("reasoning_parser", cfg.reasoning_parser)
        backend = VLLMBackend(
            cfg.model,
            revision=cfg.revision,
            tensor_parallel_size=cfg.tensor_parallel_size,
            max_model_len=cfg.max_model_len,
            model_id=cfg.model_id,
            **engine_args,
        )
        stack.callback(backend.close)
        return backend
    from .backends.openai_backend import OpenAIBackend

    urls = list(cfg.base_urls)
    if cfg.local_server:
        from .backends.local_server import LocalVLLMServer

        extra = [f"--{k.replace('_', '-')}={v}" for k, v in cfg.engine_args.items()]
        if cfg.reasoning_parser:
            extra.append(f"--reasoning-parser={cfg.reasoning_parser}")
        if cfg.max_model_len:
            extra.append(f"--max-model-len={cfg.max_model_len}")
        server = stack.enter_context(
            LocalVLLMServer(cfg.model, served_model_name=cfg.served_model_name, extra_args=extra)
        )
        urls = [server.base_url]
    if not urls:
        raise ValueError(f"model {cfg.model}: backend openai needs base_urls or local_server")
    backend = OpenAIBackend(
        cfg.served_model_name or cfg.model,
        base_urls=urls,
        api_key=os.environ.get(cfg.api_key_env, "EMPTY"),
        max_concurrency=cfg.max_concurrency,
        timeout=cfg.timeout,
        max_retries=cfg.max_retries,
        model_id=cfg.model_id,
    )
    stack.callback(backend.close)
    backend.check()
    return backend
