"""Evaluate through the project's generation backends: an OpenAI-compatible server such
as `vllm serve` (given by URL, or started on 127.0.0.1 for a local model), or vLLM's
in-process engine.

In: `EvalItem`s; the video goes in a `video_url` part, as a `file://` URL of the clip
(the server must see the same path and allow it with `--allowed-local-media-path`) or
as a `data:video/mp4;base64,...` URL (for a server on another machine). Out:
`RunnerOutput`s; a server that split the reasoning off (`reasoning_content`) has it in
`reasoning`, and the text is then only the answer.

Frame sampling is the server's: vLLM samples by `fps` and a frame cap (`media_io_kwargs`)
and resizes under the processor's pixel budget (`mm_processor_kwargs`). When this module
starts the engine or the server it passes the eval's `VideoSettings` that way; a server
started by someone else must have been started with them (see docs/evaluate.md).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from vlm_autodrive.trainer.eval.runners.base import EvalItem, RunnerOutput, VideoSettings


def vllm_video_args(video: VideoSettings, media_root: Path) -> dict[str, Any]:
    """vLLM engine/server arguments that make it sample clips like `video`: frames at
    `fps` capped at `max_frames`, at most `max_pixels` a frame, one video a prompt, and
    read access to the clips under `media_root`."""
    io: dict[str, Any] = {}
    if video.fps:
        io["fps"] = video.fps
    if video.max_frames:
        io["num_frames"] = video.max_frames
    args: dict[str, Any] = {
        "allowed_local_media_path": str(media_root),
        "limit_mm_per_prompt": {"image": 0, "video": 1},
    }
    if io:
        args["media_io_kwargs"] = {"video": io}
    if video.max_pixels:
        args["mm_processor_kwargs"] = {"max_pixels": video.max_pixels}
    return args


class BackendRunner:
    """A `builders.backends` backend (OpenAI-compatible or in-process vLLM) as a runner.

    `backend_cfg` is a `builders.generate_config.ModelConfig`; the backend (and any
    server or engine it starts) opens here and closes with `close()`.
    """

    def __init__(self, backend_cfg, video: VideoSettings, video_url: str = "file"):
        from vlm_autodrive.builders.generate.backends.factory import open_backend

        if video_url not in ("file", "data"):
            raise ValueError(f"video_url must be file or data, not {video_url!r}")
        self._cfg = backend_cfg
        self.video = video
        self.video_url = video_url
        self._stack = ExitStack()
        try:
            self.backend = open_backend(backend_cfg, self._stack)
        except BaseException:
            self._stack.close()
            raise
        self.model_id = self.backend.model_id

    def describe(self) -> dict[str, Any]:
        c = self._cfg
        where = "in-process engine" if c.backend == "vllm" else (
            "local vLLM server" if c.local_server else ", ".join(c.base_urls)
        )  # fmt: skip
        info: dict[str, Any] = {"backend": c.backend, "server": where, "video_url": self.video_url}
        if c.engine_args:
            info["engine_args"] = json.dumps(c.engine_args, sort_keys=True)
        return {**info, "decoding": "greedy"}

    def generate(self, items: Sequence[EvalItem]) -> Iterator[RunnerOutput]:
        from vlm_autodrive.builders.generate.backends.base import GenerationRequest, Sampling

        requests = []
        keys = set()
        for item in items:
            try:
                part = (
                    None  # blind mode: the question alone
                    if item.video is None
                    else {"type": "video_url", "video_url": {"url": self._url(item.video)}}
                )
            except OSError as e:  # an unreadable clip fails its item, not the run
                yield RunnerOutput(item.key, "", error=f"{type(e).__name__}: {e}")
                continue
            keys.add(item.key)
            requests.append(
                GenerationRequest(
                    request_id=item.key,
                    messages=item.messages(part),
                    sampling=Sampling(temperature=0.0, max_tokens=item.max_new_tokens),
                )
            )
        for resp in self.backend.generate(requests):
            keys.discard(resp.request_id)
            if resp.error or not resp.completions:
                yield RunnerOutput(resp.request_id, "", error=resp.error or "no completion")
                continue
            c = resp.completions[0]
            yield RunnerOutput(resp.request_id, c.text, c.reasoning, None, c.finish_reason)
        for key in keys:  # a backend must answer every request; report any it dropped
            yield RunnerOutput(key, "", error="the backend returned no response")

    def _url(self, video: Path) -> str:
        if self.video_url == "data":
            data = base64.b64encode(video.read_bytes()).decode("ascii")
            return f"data:video/mp4;base64,{data}"
        return video.resolve().as_uri()

    def close(self) -> None:
        self._stack.close()


def backend_config(
    kind: str,
    model: str,
    video: VideoSettings,
    media_root: Path,
    *,
    base_urls: Sequence[str] = (),
    served_model: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int = 8,
    engine_args: dict[str, Any] | None = None,
):
    """The `ModelConfig` for an eval runner.

    `kind` `vllm`: the in-process engine; `openai` with `base_urls`: those servers (their
    video settings are theirs); `openai` without: a vLLM server started on 127.0.0.1 for
    `model`. Engines and servers started here get `vllm_video_args` and `engine_args`.
    """
    from vlm_autodrive.builders.generate.config import ModelConfig

    started_here = kind == "vllm" or not base_urls
    args = {**vllm_video_args(video, media_root), **(engine_args or {})} if started_here else {}
    if kind == "openai" and not base_urls:
        # Server flags take JSON for dict values.
        args = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in args.items()}
    return ModelConfig(
        backend="vllm" if kind == "vllm" else "openai",
        model=model,
        served_model_name=served_model,
        base_urls=list(base_urls),
        local_server=kind == "openai" and not base_urls,
        api_key_env=api_key_env,
        max_concurrency=concurrency,
        engine_args=args,
    )
