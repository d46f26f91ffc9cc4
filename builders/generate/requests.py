"""Requests of the model splits: built from a rendered prompt, sent, and stored.

In: a split, its sampling settings, the rendered system and user blocks and the clip.
Out: a `GenerationRequest` (video as a `clip:` URL, so the cache key does not depend on
where the build lies), and for the misses of the cache, the responses of the backend,
each stored in the cache as it arrives (a killed run keeps what it received).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vlm_autodrive.builders.generate.backends.base import (
    Backend,
    GenerationRequest,
    GenerationResponse,
    Sampling,
)
from vlm_autodrive.builders.generate.cache import ResponseCache
from vlm_autodrive.builders.generate.config import ModelConfig, SplitGenConfig
from vlm_autodrive.builders.generate.report import SplitReport
from vlm_autodrive.builders.generate.tasks.base import ClipInput, ModelSplit

_FLUSH_EVERY, _FLUSH_SECONDS = 64, 1.0


def send_misses(
    name: str,
    backend: Backend,
    misses: list[GenerationRequest],
    cache: ResponseCache,
    model_id: str,
    report: SplitReport,
    progress: bool,
) -> dict[str, GenerationResponse]:
    """Send the misses; store each success in the cache as it arrives."""
    got: dict[str, GenerationResponse] = {}
    pending: list[GenerationResponse] = []
    last = time.perf_counter()
    start = last
    bar = tqdm(total=len(misses), desc=name, unit="req", disable=not progress)
    failed = 0
    for resp in backend.generate(misses):
        got[resp.request_id] = resp
        report.sent += 1
        if resp.error is None:
            pending.append(resp)
            report.completion_tokens += sum(c.completion_tokens for c in resp.completions)
        else:
            failed += 1
        now = time.perf_counter()
        if len(pending) >= _FLUSH_EVERY or now - last > _FLUSH_SECONDS:
            cache.put_many(model_id, pending)
            pending, last = [], now
        bar.update()
        bar.set_postfix(
            tok_s=f"{report.completion_tokens / max(now - start, 1e-9):.0f}",
            cached=report.cached,
            failed=failed,
            refresh=False,
        )
    cache.put_many(model_id, pending)
    bar.close()
    return got


def build_request(
    split: ModelSplit,
    sgen: SplitGenConfig,
    model_cfg: ModelConfig | None,
    system: str,
    user: str,
    clip: ClipInput,
) -> GenerationRequest:
    """The request for one clip. A video is referenced as `clip:<path in the build>` so
    that the cache key does not depend on where the build folder lies; `_local_paths`
    turns it into a file URL just before sending."""
    if model_cfg is not None and model_cfg.fold_system_prompt and system:
        user, system = f"{system}\n\n{user}", ""
    content: Any = user
    if split.needs_video:
        content = [
            {"type": "video_url", "video_url": {"url": f"clip:{clip.video}"}},
            {"type": "text", "text": user},
        ]
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": content}
    ]
    reasoning_parser = bool(model_cfg and model_cfg.reasoning_parser)
    return GenerationRequest(
        request_id="",
        messages=messages,
        sampling=Sampling(sgen.temperature, sgen.top_p, sgen.max_tokens, sgen.n, sgen.seed),
        constraint=split.constraint(clip, reasoning_parser),
    )


def local_paths(req: GenerationRequest, build_dir: Path) -> GenerationRequest:
    """`clip:<relative path>` video URLs as `file://<absolute path>` for the backend."""
    prefix = f"file://{build_dir.resolve()}/"

    def part(p: dict[str, Any]) -> dict[str, Any]:
        url = p.get("video_url", {}).get("url", "")
        if url.startswith("clip:"):
            return {"type": "video_url", "video_url": {"url": prefix + url[5:]}}
        return p

    msgs = [
        m if isinstance(m["content"], str) else {**m, "content": [part(p) for p in m["content"]]}
        for m in req.messages
    ]
    return replace(req, messages=msgs)


def estimate_tokens(req: GenerationRequest) -> int:
    """About 4 characters a token; video parts are not counted."""
    chars = 0
    for m in req.messages:
        c = m["content"]
        chars += len(c) if isinstance(c, str) else sum(len(p.get("text", "")) for p in c)
    return chars // 4  # the prompt is processed once for all n samples
