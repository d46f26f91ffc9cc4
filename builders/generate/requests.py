"""Requests of the model splits: built from a rendered prompt, sent, and stored.

In: a split, its sampling settings, the rendered system and user blocks and the clip.
Out: a `GenerationRequest` (video as a `clip:` URL, so the cache key does not depend on
where the build lies), and for the misses of the cache, the responses of the backend,
each stored in the cache as it arrives (a killed run keeps what it received).

One request per clip, seeded from the split's seed and the clip id, so that clips with
the same prompt (the scene-level clips of a video, or look-alike videos) get samples of
their own; with `share_prompts` the clips of one side that have identical prompts share
one request, never across train and test. A request with a video is keyed on the
clip file's content, so re-cut clips at the same path are sent again.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vlm_autodrive.builders.core.files import memoized_sha256
from vlm_autodrive.builders.core.ranking import seeded_rank
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.generate.backends.base import (
    Backend,
    Completion,
    GenerationRequest,
    GenerationResponse,
    Sampling,
)
from vlm_autodrive.builders.generate.cache import ResponseCache
from vlm_autodrive.builders.generate.config import ModelConfig, SplitGenConfig
from vlm_autodrive.builders.generate.report import SplitReport
from vlm_autodrive.builders.generate.tasks.base import ClipInput, ModelSplit

_FLUSH_EVERY, _FLUSH_SECONDS = 64, 1.0
SEED_RANGE = 2**31  # request seeds stay well inside every server's integer range
OVERSIZED = "oversized"  # finish_reason of a sample cut at max_output_chars


def request_seed(seed: int, split: str, scope: str) -> int:
    """The seed of the request for `scope` (a clip id, or a side when prompts are shared)."""
    return seeded_rank(seed, "request", split, scope) % SEED_RANGE


def checked(resp: GenerationResponse, n: int, max_chars: int) -> GenerationResponse:
    """A backend's response as the stage keeps it: fewer than `n` choices is an error
    (never cached); samples longer than `max_chars` (text and reasoning together) are cut
    to that many characters and marked `oversized`, so the cache holds no more; lone
    surrogates (invalid Unicode, which SQLite cannot store) become U+FFFD, which the
    parsers refuse with the reason, warm cache or not."""
    if resp.error is not None:
        return resp
    if len(resp.completions) < n:
        return replace(
            resp,
            completions=[],
            error=f"the backend returned {len(resp.completions)} of {n} choices",
        )
    comps = [oversized(_valid_unicode(c), max_chars) for c in resp.completions[:n]]
    return replace(resp, completions=comps)


def _valid_unicode(c: Completion) -> Completion:
    def fix(text: str | None) -> str | None:
        if text is None or text.isascii():
            return text
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")

    text, reasoning = fix(c.text), fix(c.reasoning)
    if text == c.text and reasoning == c.reasoning:
        return c
    return replace(c, text=text, reasoning=reasoning)


def oversized(c: Completion, max_chars: int) -> Completion:
    reasoning = c.reasoning or ""
    if len(c.text) + len(reasoning) <= max_chars:
        return c
    text = c.text[:max_chars]
    kept = reasoning[: max_chars - len(text)] if c.reasoning is not None else None
    return replace(c, text=text, reasoning=kept, finish_reason=OVERSIZED)


def send_misses(
    name: str,
    backend: Backend,
    misses: list[GenerationRequest],
    cache: ResponseCache,
    model_id: str,
    report: SplitReport,
    progress: bool,
    n: int = 1,
    max_chars: int = 200_000,
) -> dict[str, GenerationResponse]:
    """Send the misses; store each success in the cache as it arrives (see `checked`)."""
    got: dict[str, GenerationResponse] = {}
    pending: list[GenerationResponse] = []
    last = time.perf_counter()
    start = last
    bar = tqdm(total=len(misses), desc=name, unit="req", disable=not progress)
    failed = 0
    for resp in backend.generate(misses):
        resp = checked(resp, n, max_chars)
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
    taxonomy: Taxonomy,
) -> GenerationRequest:
    """The request for one clip. A video is referenced as `clip:<path in the build>` so
    that the cache key does not depend on where the build folder lies (`local_paths`
    turns it into a file URL just before sending); the key holds its content hash."""
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
    if sgen.share_prompts:
        extra = {"side": clip.split}
    else:
        extra = {"clip": clip.clip_id}
    seed = request_seed(sgen.seed, split.name, next(iter(extra.values())))
    if split.needs_video:
        extra["video_sha256"] = clip.video_sha256 or memoized_sha256(clip.video_path)
    return GenerationRequest(
        request_id="",
        messages=messages,
        sampling=Sampling(sgen.temperature, sgen.top_p, sgen.max_tokens, sgen.n, seed),
        constraint=split.constraint(clip, reasoning_parser, taxonomy),
        key_extra=extra,
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
