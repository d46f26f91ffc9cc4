"""Model splits stage: prompts -> requests -> response cache -> backend -> parse -> rows.

Reads the rule configs (`caption_metadata`, `mcq`) and the train/test assignment;
writes one config per model split (`vqa`, `reasoning_mcq`, `reasoning_vqa`,
`caption_vlm`) and the `failures` config. For each split, in order:

1. render the prompt template per clip (a render error fails that clip, kind `render`);
2. key each request on model, sampling, rendered messages and constraint; clips with
   identical prompts share one request;
3. look the keys up in the response cache; send only the misses, storing each response
   as it arrives (a killed run keeps what it received);
4. parse every sample; well-formed rows go to the split's config, the rest to `failures`
   with the raw output and the reason.

Counts are conserved and checked per split: samples = kept + failures.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vlm_autodrive.resources import bundled

from .assign import read_assignment
from .backends.base import Backend, Completion, GenerationRequest, GenerationResponse, Sampling
from .dataset_folder import ConfigTables, write_dataset_folder
from .failures import CONFIG as FAILURES
from .failures import FAILURES_SCHEMA, FailureRow, failure_id
from .generate_config import GenerateConfig, ModelConfig, SplitGenConfig
from .jinja_env import LoadedTemplate, load_template
from .model_inputs import clip_inputs, failed_request_ids, read_import
from .model_report import SplitReport
from .parsing import ParseError
from .response_cache import ResponseCache, request_key
from .rows import rows_to_table
from .splits import MODEL_SPLITS
from .splits.base import ClipInput, Filtered, ModelSplit
from .taxonomy import Taxonomy

CACHE_PATH = Path("cache") / "responses.sqlite"
BLOCKS = ("system", "user")
_FLUSH_EVERY, _FLUSH_SECONDS = 64, 1.0


BackendOpener = Callable[[ModelConfig, ExitStack], Backend]


def run_model_splits(
    build_dir: Path,
    gen: GenerateConfig,
    taxonomy: Taxonomy,
    *,
    dry_run: bool = False,
    retry_failed: bool = False,
    open_backend: BackendOpener | None = None,
    progress: bool = True,
) -> list[SplitReport]:
    """Build every split of `gen.splits` (in MODEL_SPLITS order); returns their reports.

    `dry_run` sends nothing and writes nothing: it counts rows, cached and to-send
    requests per split. `retry_failed` re-sends the requests of `error` and `parse`
    failures with a new attempt (a new seed and cache key). `open_backend` builds a
    backend for a model config (default: `backend_factory.open_backend`), opened only
    for a split that has requests to send.
    """
    if open_backend is None:
        from functools import partial

        from .backend_factory import open_backend as opener

        open_backend = partial(opener, log_dir=build_dir / "logs", media_dir=build_dir)
    folders = ([Path(gen.prompts)] if gen.prompts else []) + [bundled("prompts")]
    sides = {c: s for c, s in read_assignment(build_dir).items() if s != "held_out"}
    clips = clip_inputs(build_dir, sides)
    cache = ResponseCache(build_dir / CACHE_PATH)
    retry = failed_request_ids(build_dir) if retry_failed else set()
    reports, configs, failures = [], [], []
    backends: dict[str, Backend] = {}
    prompt_hashes: dict[str, str] = {}
    try:
        with ExitStack() as stack:
            for name, split in MODEL_SPLITS.items():
                if name not in gen.splits:
                    continue
                sgen = gen.splits[name]
                template = load_template(
                    split.prompt, folders, split.inputs, split.sample_contexts(taxonomy), BLOCKS
                )
                prompt_hashes[split.prompt] = template.sha256
                if sgen.import_file:
                    model_cfg, model_id = None, f"import:{Path(sgen.import_file).name}"
                else:
                    model_cfg = gen.models[sgen.model]
                    model_id = model_cfg.model_id

                def backend_for(cfg=model_cfg) -> Backend:
                    # Roles that name the same served model share one backend (and server).
                    key = cfg.model_dump_json(exclude={"fold_system_prompt"})
                    if key not in backends:
                        backends[key] = open_backend(cfg, stack)
                    return backends[key]

                report, rows, fails = _run_split(
                    split,
                    sgen,
                    model_cfg,
                    model_id,
                    template,
                    clips,
                    taxonomy,
                    cache,
                    backend_for,
                    retry,
                    dry_run,
                    progress,
                    build_dir,
                )
                reports.append(report)
                failures.extend(fails)
                if name == "caption_vlm":  # later prompts read the VLM captions
                    vlm = {r.clip_id: r.answer for r in rows if r.sample == 0}
                    clips = [replace(c, vlm_caption=vlm.get(c.clip_id)) for c in clips]
                configs.append(
                    ConfigTables(
                        name,
                        split.description,
                        model_id,
                        template.ref,
                        _by_side(rows, split.schema),
                    )
                )
    finally:
        cache.close()
    if not dry_run:
        configs.append(
            ConfigTables(
                FAILURES,
                "Every generated sample that did not become rows: the raw output, "
                "the reason and the attempts.",
                "pipeline",
                "",
                _by_side(failures, FAILURES_SCHEMA),
            )
        )
        stage_info = {
            # config -> the model that wrote it and how it was sampled (the card lists these)
            "models": {
                name: (
                    {"model": f"import:{sgen.import_file}"}
                    if sgen.import_file
                    else {
                        "model": gen.models[sgen.model].model,
                        "revision": gen.models[sgen.model].revision,
                        "backend": gen.models[sgen.model].backend,
                        "sampling": sgen.model_dump(exclude={"model", "import_file"}),
                    }
                )
                for name, sgen in gen.splits.items()
            },
            "prompts": prompt_hashes,
            "counts": {
                r.name: {"samples": r.samples, "kept": r.kept, "rows": r.rows, "failed": r.failed}
                for r in reports
            },
        }
        made = {c.name for c in configs}
        stale = [n for n in (*MODEL_SPLITS, FAILURES) if n not in made]
        write_dataset_folder(
            build_dir, configs, stage="model_splits", stage_info=stage_info, top={}, drop=stale
        )
    return reports


def _run_split(
    split: ModelSplit,
    sgen: SplitGenConfig,
    model_cfg: ModelConfig | None,
    model_id: str,
    template: LoadedTemplate,
    clips: list[ClipInput],
    taxonomy: Taxonomy,
    cache: ResponseCache,
    backend_for,
    retry: set[str],
    dry_run: bool,
    progress: bool,
    build_dir: Path,
):
    t0 = time.perf_counter()
    report = SplitReport(split.name)
    common_base = {"generator": model_id, "template": template.ref}
    fails: list[FailureRow] = []
    # 1. render: clip -> (request, key for the cache)
    plan: list[tuple[ClipInput, str]] = []
    requests: dict[str, GenerationRequest] = {}
    imported = read_import(sgen.import_file) if sgen.import_file else None
    rendered: dict[tuple, tuple[str, str]] = {}
    for clip in clips:
        ctx = split.context(clip, taxonomy)
        if ctx is None:
            continue
        report.clips += 1
        # A context is made from these clip fields only: clips that share them (the
        # scene-level clips of a video) share one render.
        memo = (clip.caption, clip.vlm_caption, clip.mcq_question, clip.label)
        try:
            if memo not in rendered:
                rendered[memo] = (
                    template.render_block("system", ctx),
                    template.render_block("user", ctx),
                )
            req = _request(split, sgen, model_cfg, *rendered[memo], clip)
        except Exception as e:  # a template error for this clip only; the rest go on
            reason = f"{type(e).__name__}: {e}"
            for s in range(sgen.n):
                fails.append(_failure(split, clip, s, "render", reason, None, 0, common_base, ""))
            continue
        base = request_key(model_id, req)
        plan.append((clip, base))
        requests.setdefault(base, req)
    attempts = cache.attempts(requests)
    for base in retry & set(requests):
        attempts[base] = attempts.get(base, 0) + 1
    keyed: dict[str, GenerationRequest] = {}
    key_of: dict[str, str] = {}
    for base, req in requests.items():
        a = attempts.get(base, 0)
        if a:
            # vLLM samples request seed s as s, s+1, ..., s+n-1: step attempts by n so
            # a retry never repeats an earlier attempt's samples.
            seed = (sgen.seed or 0) + a * sgen.n
            req = replace(req, sampling=replace(req.sampling, seed=seed))
        key = request_key(model_id, req, a) if a else base
        key_of[base] = key
        keyed[key] = replace(req, request_id=key)
    report.requests = len(keyed)
    # 2. the cache, then the backend for the misses
    if imported is not None:
        responses = {
            base: GenerationResponse(base, [Completion(imported[c.clip_id])])
            for c, base in plan
            if c.clip_id in imported
        }
        for c, base in plan:
            if c.clip_id not in imported:
                responses.setdefault(
                    base,
                    GenerationResponse(
                        base, error=f"no caption for clip {c.clip_id} in {sgen.import_file}"
                    ),
                )
        by_key = {key_of[b]: r for b, r in responses.items()}
        report.cached = len(by_key)
    else:
        by_key = cache.get_many(keyed, sgen.n)
        report.cached = len(by_key)
        misses = [r for k, r in keyed.items() if k not in by_key]
        report.to_send = len(misses)
        report.prompt_tokens_est = sum(_estimate_tokens(r) for r in misses)
        if progress and not dry_run:
            tqdm.write(
                f"{split.name}: {report.clips} clips, {report.requests} requests: "
                f"{report.cached} cached, {report.to_send} to send"
            )
        if misses and not dry_run:
            by_key.update(
                _send(
                    split.name,
                    backend_for(),
                    [_local_paths(r, build_dir) if split.needs_video else r for r in misses],
                    cache,
                    model_id,
                    report,
                    progress,
                )
            )
            if retry:
                cache.set_attempts({b: a for b, a in attempts.items() if a})
    # A dry run parses what the cache holds (so later splits see the VLM captions), and
    # counts nothing it does not hold.
    rows = _parse_all(
        split, plan, key_of, by_key, sgen, taxonomy, common_base, report, fails, dry_run
    )
    report.seconds = time.perf_counter() - t0
    return report, rows, fails


def _parse_all(
    split,
    plan,
    key_of,
    by_key,
    sgen,
    taxonomy,
    common_base,
    report,
    fails,
    cached_only: bool = False,
):
    rows = []
    for clip, base in plan:
        key = key_of[base]
        resp = by_key.get(key)
        if resp is None and cached_only:
            continue
        common = {
            "clip_id": clip.clip_id,
            "video_id": clip.video_id,
            "label": clip.label,
            "split": clip.split,
            "video": clip.video,
            **common_base,
        }
        for s in range(sgen.n):
            report.samples += 1
            if resp is None or resp.error is not None:
                reason = resp.error if resp is not None else "no response"
                fails.append(
                    _failure(
                        split,
                        clip,
                        s,
                        "error",
                        reason,
                        None,
                        resp.attempts if resp else 0,
                        common_base,
                        key,
                    )
                )
                continue
            comp = resp.completions[s]
            try:
                new = split.parse(comp, clip, s, dict(common), taxonomy)
            except Filtered as e:
                fails.append(
                    _failure(split, clip, s, "filtered", str(e), comp, 1, common_base, key)
                )
                continue
            except ParseError as e:
                fails.append(_failure(split, clip, s, "parse", str(e), comp, 1, common_base, key))
                continue
            report.kept += 1
            rows.extend(new)
    counts = Counter(f.kind for f in fails)
    report.samples += counts.get("render", 0)  # samples whose prompt never rendered
    report.failed = dict(sorted(counts.items()))
    report.rows = len(rows)
    if not cached_only:
        assert report.samples == report.kept + len(fails), f"{split.name}: samples lost"
    return sorted(rows, key=lambda r: r.id)


def _send(
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


def _request(
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


def _local_paths(req: GenerationRequest, build_dir: Path) -> GenerationRequest:
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


def _estimate_tokens(req: GenerationRequest) -> int:
    """About 4 characters a token; video parts are not counted."""
    chars = 0
    for m in req.messages:
        c = m["content"]
        chars += len(c) if isinstance(c, str) else sum(len(p.get("text", "")) for p in c)
    return chars // 4  # the prompt is processed once for all n samples


def _failure(
    split, clip, sample, kind, reason, comp: Completion | None, attempts, common_base, key
) -> FailureRow:
    return FailureRow(
        id=failure_id(split.name, clip.clip_id, sample),
        request_id=key,
        config=split.name,
        clip_id=clip.clip_id,
        video_id=clip.video_id,
        label=clip.label,
        split=clip.split,
        sample=sample,
        kind=kind,
        reason=reason,
        raw_output=comp.text if comp else None,
        reasoning=comp.reasoning if comp else None,
        attempts=attempts,
        generator=common_base["generator"],
        template=common_base["template"],
        video=clip.video,
    )


def _by_side(rows: list[Any], schema) -> dict[str, Any]:
    return {
        side: rows_to_table([r for r in rows if r.split == side], schema)
        for side in ("train", "test")
    }
