"""Opening the backend a model config names (the only place that knows the backends)."""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from pathlib import Path

from vlm_autodrive.builders.generate.backends.base import Backend
from vlm_autodrive.builders.generate.config import ModelConfig


def open_backend(
    cfg: ModelConfig, stack: ExitStack, log_dir: Path | None = None, media_dir: Path | None = None
) -> Backend:
    """A ready backend for `cfg`; servers or engines it starts are closed by `stack`.

    A local server's log goes to `log_dir` (the build folder's `logs/`) when given, and
    it may read video files under `media_dir` (the build folder: the clips).
    """
    if cfg.backend == "vllm":
        from vlm_autodrive.builders.generate.backends.vllm_backend import VLLMBackend

        engine_args = dict(cfg.engine_args)
        if cfg.reasoning_parser:
            engine_args.setdefault("reasoning_parser", cfg.reasoning_parser)
        if media_dir is not None:  # video parts are file:// URLs under the build folder
            engine_args.setdefault("allowed_local_media_path", str(Path(media_dir).resolve()))
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
    if cfg.backend == "ray":
        return _open_ray(cfg, stack, media_dir)
    from vlm_autodrive.builders.generate.backends.openai_backend import OpenAIBackend

    urls = list(cfg.base_urls)
    if cfg.local_server:
        from vlm_autodrive.builders.generate.backends.local_server import LocalVLLMServer

        # engine_args become server flags: {"limit_mm_per_prompt": {...}} ->
        # --limit-mm-per-prompt '{...}' (mappings as JSON, as vLLM's CLI takes them).
        extra: list[str] = []
        for k, v in cfg.engine_args.items():
            flag = f"--{k.replace('_', '-')}"
            if v is True:
                extra.append(flag)
            elif v is not False and v is not None:
                extra += [flag, json.dumps(v) if isinstance(v, dict | list) else str(v)]
        if media_dir is not None:
            extra += ["--allowed-local-media-path", str(Path(media_dir).resolve())]
        if cfg.revision:
            extra += ["--revision", cfg.revision]
        if cfg.tensor_parallel_size > 1:
            extra += ["--tensor-parallel-size", str(cfg.tensor_parallel_size)]
        server = stack.enter_context(
            LocalVLLMServer(
                cfg.model,
                python=cfg.server_python,
                served_model_name=cfg.served_model_name,
                max_model_len=cfg.max_model_len,
                reasoning_parser=cfg.reasoning_parser,
                extra_args=extra,
                log_path=log_dir / f"vllm-server-{Path(cfg.model).name}.log" if log_dir else None,
            )
        )
        urls = [server.base_url]
    if not urls:
        raise ValueError(f"model {cfg.model}: backend openai needs base_urls or local_server")
    served = cfg.served_model_name or (Path(cfg.model).name if cfg.local_server else cfg.model)
    backend = OpenAIBackend(
        served,
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


def _open_ray(cfg: ModelConfig, stack: ExitStack, media_dir: Path | None) -> Backend:
    """backend ray: HTTP actors against `base_urls`, or vLLM engines in the cluster."""
    from vlm_autodrive.builders.core.ray_cluster import import_ray
    from vlm_autodrive.builders.generate.backends.ray_backend import RayBackend
    from vlm_autodrive.builders.generate.config import RayModelSettings

    import_ray()  # a clear message when the extra is missing, before anything else
    settings = cfg.ray or RayModelSettings()
    engine = None
    if not cfg.base_urls:
        engine_kwargs = {"tensor_parallel_size": cfg.tensor_parallel_size, **cfg.engine_args}
        if cfg.revision:
            engine_kwargs.setdefault("revision", cfg.revision)
        if cfg.max_model_len:
            engine_kwargs.setdefault("max_model_len", cfg.max_model_len)
        if cfg.reasoning_parser:
            engine_kwargs.setdefault("reasoning_parser", cfg.reasoning_parser)
        if media_dir is not None:  # video parts are file:// URLs under the shared build
            engine_kwargs.setdefault("allowed_local_media_path", str(Path(media_dir).resolve()))
        engine = {"model_source": cfg.model, "engine_kwargs": engine_kwargs}
        if settings.accelerator_type:
            engine["accelerator_type"] = settings.accelerator_type
    served = cfg.served_model_name or cfg.model
    backend = RayBackend(
        served,
        cfg.model_id,
        base_urls=list(cfg.base_urls),
        api_key=os.environ.get(cfg.api_key_env, "EMPTY"),
        replicas=settings.replicas,
        batch_size=settings.batch_size,
        timeout=cfg.timeout,
        max_retries=cfg.max_retries,
        engine=engine,
    )
    stack.callback(backend.close)
    backend.check()
    return backend
