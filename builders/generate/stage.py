"""Model splits stage: prompts -> requests -> response cache -> backend -> parse -> rows.

Reads the rule configs (`caption_metadata`, `mcq`, `cause_vqa`), the clips' metadata
facts and the train/test assignment; writes one config per model split (MODEL_SPLITS:
`caption_vlm`, `vqa`, `reasoning_mcq`, `reasoning_vqa`, `reasoning_revised`, `short_qa`,
`caption_augmented`, `cause_reasoning`) and the `failures` config. A split's inputs are
one per clip, or what its `expand` makes of the splits before it (reasoning_revised: one
per filtered reasoning_mcq sample). For each split, in order:

1. render the prompt template per clip (a render error fails that clip, kind `render`);
2. one request per clip, seeded from the clip id, keyed on model, sampling, rendered
   messages, constraint, the clip (or, with `share_prompts`, the side: clips of one side
   with identical prompts share a request) and the content hash of an attached video;
3. look the keys up in the response cache; send only the misses, storing each response
   as it arrives (a killed run keeps what it received);
4. parse every sample; well-formed rows go to the split's config, the rest to `failures`
   with the raw output and the reason (a response with fewer samples than `n` is an
   `error`, a sample over `max_output_chars` a `parse` failure);
5. with `target:`, more rounds of requests for the classes short of their train rows,
   until each has them or has spent its `budget` (target.py).

Counts are conserved and checked per split: samples = kept + failures.

reasoning_revised with `check:` runs that loop a second time on its kept rows (the
independent check), and reports both steps as one split.

Over 400 lines on purpose: the per-split loop (render, key, cache, send, parse) is one
flow whose steps share the split's plan, and the revision check reruns it; requests and
failures already live apart.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from vlm_autodrive.builders.core.errors import InputError
from vlm_autodrive.builders.core.fingerprint import input_values
from vlm_autodrive.builders.core.jinja_env import LoadedTemplate, load_template
from vlm_autodrive.builders.core.stage import Counts
from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.dataset.assign import read_assignment
from vlm_autodrive.builders.dataset.folder import ConfigTables, write_dataset_folder
from vlm_autodrive.builders.dataset.rows import rows_to_table
from vlm_autodrive.builders.generate.backends.base import (
    Backend,
    Completion,
    GenerationRequest,
    GenerationResponse,
)
from vlm_autodrive.builders.generate.cache import ResponseCache, request_key
from vlm_autodrive.builders.generate.clip_sources import ClipSources, InputPools
from vlm_autodrive.builders.generate.config import GenerateConfig, ModelConfig, SplitGenConfig
from vlm_autodrive.builders.generate.estimate import gpu_hours, output_tokens, prompt_counter
from vlm_autodrive.builders.generate.failures import CONFIG as FAILURES
from vlm_autodrive.builders.generate.failures import (
    FAILURES_SCHEMA,
    FailureRow,
    failure_counts,
    failure_row,
    failure_rows,
    failures_table,
)
from vlm_autodrive.builders.generate.inputs import (
    failed_request_ids,
    read_clip_sources,
    read_config_table,
    read_import,
)
from vlm_autodrive.builders.generate.parsing import ParseError
from vlm_autodrive.builders.generate.preview import changed_rows
from vlm_autodrive.builders.generate.report import SplitReport
from vlm_autodrive.builders.generate.requests import (
    OVERSIZED,
    build_request,
    checked,
    estimate_tokens,
    local_paths,
    send_misses,
)
from vlm_autodrive.builders.generate.row_memo import (
    Reused,
    RowMemo,
    attaches_video,
    merge_reused,
    new_outcomes,
    one_input_per_clip,
    open_memo,
    reuse_inputs,
    reuse_whole_clips,
    split_key,
)
from vlm_autodrive.builders.generate.stamp import (
    STAGE,
    model_splits_key,
    parser_fingerprint,
    read_clip_file_states,
    stored_reports,
    word_lists,
)
from vlm_autodrive.builders.generate.stamp import commit as commit_stamp
from vlm_autodrive.builders.generate.target import Fetched, check_target_classes, reach_targets
from vlm_autodrive.builders.generate.tasks import MODEL_SPLITS
from vlm_autodrive.builders.generate.tasks.base import (
    ClipInput,
    Filtered,
    ModelSplit,
)
from vlm_autodrive.builders.generate.tasks.reasoning_revised import CHECK
from vlm_autodrive.resources import bundled

CACHE_PATH = Path("cache") / "responses.sqlite"
CHECK_KEY = "reasoning_revised.check"  # the revision check's template in load_prompt_templates
BLOCKS = ("system", "user")
PENDING = "(a caption the dry run has not made yet) "
MEASURE = 256  # cached responses a dry run reads at most to measure a split's output


BackendOpener = Callable[[ModelConfig, ExitStack], Backend]


@dataclass
class SplitJob:
    """One model split to build: the split, its settings, its prompt, and its model
    (`model_cfg` None for captions imported from a file)."""

    split: ModelSplit
    sgen: SplitGenConfig
    model_cfg: ModelConfig | None
    model_id: str  # the rows' `generator`
    template: LoadedTemplate
    cache_id: str  # the model's identity in the request keys (`ModelConfig.identity`)
    split_key: str = ""  # what the split reads besides its inputs (row_memo.py)


@dataclass
class RunContext:
    """What every split of one run shares."""

    build_dir: Path
    taxonomy: Taxonomy
    cache: ResponseCache
    backend_for: Callable[[ModelConfig], Backend]
    retry: set[str]
    dry_run: bool
    progress: bool
    identity: Callable[[ModelConfig], str] = ModelConfig.identity
    memo: RowMemo | None = None  # the last run's outcomes per input (row_memo.py)
    input_texts: dict[int, tuple] = field(default_factory=dict)  # row_memo.input_keys
    # The clips whose fields equal the last run's (RowMemo.unchanged_clips), or None.
    unchanged: set[str] | None = None


def run_model_splits(
    build_dir: Path,
    gen: GenerateConfig,
    taxonomy: Taxonomy,
    *,
    dry_run: bool = False,
    retry_failed: bool = False,
    open_backend: BackendOpener | None = None,
    progress: bool = True,
    clips: ClipSources | None = None,
    declared: str | None = None,
) -> list[SplitReport]:
    """Build every split of `gen.configs` (in MODEL_SPLITS order); returns their reports.

    `dry_run` sends nothing and writes nothing: per split it counts the clips, the
    requests cached and to send, their prompt and output tokens and GPU-hours
    (`estimate.py`), and the rows the cached responses change; it plans exactly as the
    real run does. `retry_failed` re-sends the requests of `error` and `parse` failures
    with a new attempt (a new seed and cache key). `open_backend` builds a backend for a
    model config (default: `backend_factory.open_backend`), opened only for a split that
    has requests to send. `clips`: the clips with their texts as the dry run plans them
    (`preview.py`, a `ClipSources`) instead of the build folder's. With nothing changed
    since the last run (`stamp.py`) the stored reports come back and nothing is done.
    `declared`: the pipeline's key of the stage's declared inputs (builders/pipeline.py;
    None: derived here from `gen` and `taxonomy`).
    """
    check_target_classes(gen, taxonomy, "recipe")
    if open_backend is None:
        from vlm_autodrive.builders.generate.backends.factory import open_backend as opener

        open_backend = partial(opener, log_dir=build_dir / "logs", media_dir=build_dir)
    templates = load_prompt_templates(gen, taxonomy)
    loaded = {n: (MODEL_SPLITS[n], t) for n, t in templates.items() if n != CHECK_KEY}
    key = None  # the stage key of the build folder's inputs (a dry run's own: none)
    # The clip files' sizes and times, read once for the key and the snapshot when a
    # split attaches the video (None: none does).
    files = any(attaches_video(MODEL_SPLITS[n], gen.configs[n]) for n in loaded)
    file_states: dict[str, str] | None = {} if files else None
    if clips is None:
        if declared is None:
            from vlm_autodrive.builders.pipeline import declared_key

            declared = declared_key("model_splits", {"generate": gen}, taxonomy, build_dir)
        check = templates[CHECK_KEY].sha256 if CHECK_KEY in templates else None
        if files:
            file_states = read_clip_file_states(build_dir)
        key = model_splits_key(build_dir, gen, declared, loaded, check, file_states)
        # A retry has work whatever the key: the failures to send again.
        if not retry_failed and (stored := stored_reports(build_dir, key)) is not None:
            return stored
        sides = {c: s for c, s in read_assignment(build_dir).items() if s != "held_out"}
        clips = read_clip_sources(build_dir, sides, taxonomy)
    sources = clips
    cache = ResponseCache(build_dir / CACHE_PATH, create=not dry_run)
    retry = failed_request_ids(build_dir) if retry_failed else set()
    # A retry re-reads every input (the failures it re-sends are found on the way).
    rows_memo = RowMemo(build_dir) if retry_failed else open_memo(build_dir, STAGE)
    from vlm_autodrive.builders.pipeline import declared_key

    # The stage's code and the taxonomy: what every split's key holds.
    code_and_taxonomy = declared_key("model_splits", {}, taxonomy, None, upstream=False)
    reports, configs = [], []
    failures: list[pa.Table] = []  # each split's failures (FAILURES_SCHEMA), in order
    backends: dict[str, Backend] = {}
    prompt_hashes: dict[str, str] = {}
    try:
        with ExitStack() as stack:

            def backend_for(cfg: ModelConfig) -> Backend:
                # Roles that name the same served model share one backend (and server).
                key = cfg.model_dump_json(exclude={"fold_system_prompt"})
                if key not in backends:
                    backends[key] = open_backend(cfg, stack)
                return backends[key]

            ctx = RunContext(build_dir, taxonomy, cache, backend_for, retry, dry_run, progress)
            pools = InputPools(sources)
            ctx.memo = rows_memo
            if not retry_failed:
                ctx.unchanged = rows_memo.unchanged_clips(sources, file_states)
            # A model's weights are hashed once a run (memoised in the cache folder,
            # which a dry run does not write).
            memo = None if dry_run else build_dir / CACHE_PATH.parent
            identities: dict[str, str] = {}

            def identity(cfg: ModelConfig) -> str:
                key = cfg.model_dump_json()
                if key not in identities:
                    identities[key] = cfg.identity(memo)
                return identities[key]

            ctx.identity = identity
            for name, (split, template) in loaded.items():
                sgen = gen.configs[name]
                prompt_hashes[split.prompt] = template.sha256
                if sgen.import_file:
                    model_cfg, model_id = None, f"import:{Path(sgen.import_file).name}"
                    cache_id = model_id
                else:
                    model_cfg = gen.models[sgen.model]
                    model_id, cache_id = model_cfg.model_id, identity(model_cfg)
                key_of_split = split_key(
                    code_and_taxonomy=code_and_taxonomy,
                    split=name,
                    template=template.sha256,
                    template_ref=template.ref,
                    parser=parser_fingerprint(split),
                    word_lists=word_lists(split),
                    settings=input_values(sgen),
                    model=cache_id,
                    generator=model_id,
                )
                job = SplitJob(split, sgen, model_cfg, model_id, template, cache_id, key_of_split)
                # A split that keeps the unchanged clips whole builds only the others.
                whole = (
                    reuse_whole_clips(ctx.memo, split, key_of_split, ctx.unchanged)
                    if _memoised(job, ctx)
                    else None
                )
                pool = pools.some(ctx.unchanged) if whole is not None else pools.all()
                # Only a split that reads the failures (reasoning_revised) gets them as records.
                earlier = [] if one_input_per_clip(split) else failure_rows(_concat(failures))
                report, rows, fails = _run_split(job, split.expand(pool, earlier), ctx, whole)
                if dry_run and name == "reasoning_revised":
                    _revisions_not_known(report, reports, pools.all(), gen)
                if name == "reasoning_revised" and sgen.check is not None:
                    report, rows, fails = _check_revisions(
                        report,
                        rows,
                        fails,
                        pools.all(),
                        gen,
                        sgen.check,
                        templates[CHECK_KEY],
                        ctx,
                    )
                    prompt_hashes[CHECK.prompt] = report.check_template
                reports.append(report)
                failures.append(fails)
                if name == "caption_vlm":  # later prompts read the VLM captions
                    if name not in rows_memo.by_clip:  # the unchanged clips' may change
                        ctx.unchanged = None
                    first = rows.filter(pc.equal(rows["sample"], 0))
                    vlm = dict(
                        zip(first["clip_id"].to_pylist(), first["answer"].to_pylist(), strict=True)
                    )
                    # Dry run: a caption still to be made is not known; the prompts
                    # made from it cannot be cached (counted to send).
                    vlm.update({c: f"{PENDING}{c}" for c in report.pending})
                    pools.add_vlm_captions(vlm)
                configs.append(
                    ConfigTables(
                        name,
                        split.description,
                        model_id,
                        template.ref,
                        _by_side(rows),
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
                _by_side(_concat(failures)),
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
                for name, sgen in gen.configs.items()
            },
            "prompts": prompt_hashes,
            "counts": {
                r.name: {
                    "samples": r.samples,
                    "kept": r.kept,
                    "rows": r.rows,
                    "failed": r.failed,
                    **({"targets": r.targets} if r.targets else {}),  # target.py, per class
                }
                for r in reports
            },
        }
        made = {c.name for c in configs}
        stale = [n for n in (*MODEL_SPLITS, FAILURES) if n not in made]
        write_dataset_folder(
            build_dir, configs, stage="model_splits", stage_info=stage_info, top={}, drop=stale
        )
        commit_stamp(build_dir, key, [c.name for c in configs], reports, rows_memo.write())
    return reports


def load_prompt_templates(gen: GenerateConfig, taxonomy: Taxonomy) -> dict[str, LoadedTemplate]:
    """The checked prompt template of every split `gen` names (by split name; the
    revision check's as CHECK_KEY when it is on), from `generate.prompts` before the
    bundled folder, and the word lists the splits' parsers read (`ModelSplit.prepare`);
    InputError or TemplateLoadError naming the folder or the file and line or key."""
    if gen.prompts and not Path(gen.prompts).is_dir():
        raise InputError(gen.prompts, "not a folder", "generate.prompts")
    folders = ([Path(gen.prompts)] if gen.prompts else []) + [bundled("prompts")]
    out = {}
    for name, split in MODEL_SPLITS.items():
        if name not in gen.configs:
            continue
        split.prepare(folders, taxonomy)
        out[name] = load_template(
            split.prompt, folders, split.inputs, split.sample_contexts(taxonomy), BLOCKS
        )
        if name == "reasoning_revised" and gen.configs[name].check is not None:
            out[CHECK_KEY] = load_template(
                CHECK.prompt, folders, CHECK.inputs, CHECK.sample_contexts(taxonomy), BLOCKS
            )
    return out


def _check_revisions(report, rows, fails, clips, gen, check, template, ctx):
    """The independent check of reasoning_revised: its kept rows are asked again, trace
    without answer, of `check.model`; rows it does not confirm move to the failures.
    One report for both steps: samples = kept (confirmed) + failures of either step."""
    model_cfg = gen.models[check.model]
    job = SplitJob(CHECK, check, model_cfg, model_cfg.model_id, template, ctx.identity(model_cfg))
    candidates = [CHECK.row_type(**r) for r in rows.to_pylist()]
    checked, kept, more = _run_split(job, CHECK.expand(clips, candidates), ctx)
    for f in ("requests", "cached", "to_send", "sent", "prompt_tokens_est", "completion_tokens"):
        setattr(report, f, getattr(report, f) + getattr(checked, f))
    report.kept, report.rows = checked.kept, checked.rows
    report.by_class = {
        label: [n, checked.by_class.get(label, [0, 0])[1]]
        for label, (n, _) in report.by_class.items()
    }
    fails = pa.concat_tables([fails, more]).sort_by("id")
    report.failed = failure_counts(fails)
    report.checked = checked.samples
    report.check_template = template.sha256
    report.seconds += checked.seconds
    if not ctx.dry_run:
        Counts(
            "reasoning_revised samples", report.samples, report.kept, failures=fails.num_rows
        ).check()
    return report, kept, fails


def _revisions_not_known(
    report: SplitReport, earlier: list[SplitReport], clips: list[ClipInput], gen: GenerateConfig
) -> None:
    """Dry run: what reasoning_revised may send beyond its `to_send`, which counts the
    revisions of the wrong samples the cache holds. A reasoning_mcq sample still to be
    drawn is revised when it comes out wrong (which only the run knows), and with the
    independent check on, each sample of a revision still to be made is checked when it
    keeps the right answer: at most one request each (`target:` rounds not counted)."""
    mcq = next((r for r in earlier if r.name == "reasoning_mcq"), None)
    with_letter = {c.clip_id for c in clips if c.mcq_answer_letter}
    drawn = gen.configs["reasoning_mcq"].n * len(mcq.pending & with_letter) if mcq else 0
    sgen = gen.configs["reasoning_revised"]
    checks = (report.to_send + drawn) * sgen.n if sgen.check is not None else 0
    report.may_send = drawn + checks
    if report.may_send:
        report.may_send_why = (
            f"revising those of the {drawn} reasoning_mcq samples still to be drawn that "
            "come out wrong" + (", and checking each revision" if checks else "")
        )


def _memoised(job: SplitJob, ctx: RunContext) -> bool:
    """Whether the split reuses the last run's outcomes (row_memo.py): not with `target:`
    rounds, the revision check or a retry, where an input depends on other samples."""
    return bool(
        ctx.memo is not None
        and job.split_key
        and not (job.sgen.target or ctx.retry)
        and not (job.split.name == "reasoning_revised" and job.sgen.check is not None)
    )


def _run_split(
    job: SplitJob, clips: list[ClipInput], ctx: RunContext, whole: Reused | None = None
) -> tuple[SplitReport, pa.Table, pa.Table]:
    """Render, key, look up, send and parse one split (reusing the inputs that did not
    change, row_memo.py); its report, rows and failures (tables sorted by id). `whole`:
    what the clips left out of `clips` reuse whole (`reuse_whole_clips`)."""
    split, sgen, model_cfg, model_id, template = (
        job.split,
        job.sgen,
        job.model_cfg,
        job.model_id,
        job.template,
    )
    taxonomy, cache, retry, dry_run, progress = (
        ctx.taxonomy,
        ctx.cache,
        ctx.retry,
        ctx.dry_run,
        ctx.progress,
    )
    t0 = time.perf_counter()
    report = SplitReport(split.name)
    common_base = {"generator": model_id, "template": template.ref}
    fails: list[FailureRow] = []
    # 0. the inputs whose own inputs did not change keep their rows (row_memo.py)
    clips, reused, outcomes = (
        reuse_inputs(ctx.memo, split, job.split_key, sgen, clips, ctx.input_texts, whole)
        if _memoised(job, ctx)
        else (clips, None, None)
    )
    # 1. render: clip -> (request, key for the cache)
    plan: list[tuple[ClipInput, str]] = []
    requests: dict[str, GenerationRequest] = {}
    imported = read_import(sgen.import_file) if sgen.import_file else None
    rendered: dict[tuple, tuple[str, str]] = {}
    for clip in clips:
        context = split.context(clip, taxonomy)
        if context is None:
            continue
        report.clips += 1
        # A context is made from these clip fields only: clips that share them (the
        # scene-level clips of a video) share one render.
        memo = split.memo_key(clip)
        try:
            if memo not in rendered:
                rendered[memo] = (
                    template.render_block("system", context),
                    template.render_block("user", context),
                )
            req = build_request(split, sgen, model_cfg, *rendered[memo], clip, taxonomy)
        except Exception as e:  # a template error for this clip only; the rest go on
            reason = f"{type(e).__name__}: {e}"
            failed = [
                failure_row(split, clip, s, "render", reason, None, 0, common_base, "")
                for s in range(sgen.n)
            ]
            fails.extend(failed)
            if outcomes is not None:
                outcomes[id(clip)][1:6] = ["", sgen.n, 0, [], [f.id for f in failed]]
            continue
        base = request_key(job.cache_id, req)
        plan.append((clip, base))
        requests.setdefault(base, req)
    keyed, key_of, bumped = _keyed(job.cache_id, requests, cache, retry)
    report.requests = len(keyed)
    misses: list[GenerationRequest] = []
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
        by_key = _lookup(keyed, cache, sgen)
        report.cached = len(by_key)
        misses = [r for k, r in keyed.items() if k not in by_key]
        report.to_send = len(misses)
        if dry_run:
            measured = list(by_key.values())
            if not measured and reused is not None and len(reused.request_keys):
                # The inputs the last run answered and this one reuses were never looked
                # up: measure the output on (up to MEASURE) of their cached responses.
                keys = reused.request_keys.slice(0, MEASURE).to_pylist()
                measured = list(cache.get_many(keys, sgen.n).values())
            _estimate(report, misses, measured, model_cfg, sgen)
            missing = {r.request_id for r in misses}
            report.pending = {c.clip_id for c, base in plan if key_of[base] in missing}
        else:
            report.prompt_tokens_est = sum(estimate_tokens(r) for r in misses)
        if progress and not dry_run:
            tqdm.write(
                f"{_shown_name(split)}: {report.clips} clips, {report.requests} requests: "
                f"{report.cached} cached, {report.to_send} to send"
            )
        if misses and not dry_run:
            by_key.update(_send(job, misses, ctx, report))
        if bumped and not dry_run:
            cache.set_attempts(bumped)
    # A dry run parses what the cache holds (so later splits see the VLM captions), and
    # counts nothing it does not hold.
    rows = _parse_all(
        split,
        plan,
        key_of,
        by_key,
        sgen,
        taxonomy,
        common_base,
        report,
        fails,
        dry_run,
        per_input=outcomes,
    )
    if sgen.target:  # more rounds for the classes short of their rows (target.py)
        more = reach_targets(
            split.name,
            sgen,
            plan,
            requests,
            report,
            rows,
            fails,
            partial(_fetch, job, ctx, report),
            partial(_parse_more, split, sgen, taxonomy, common_base, dry_run),
            dry_run,
            tqdm.write if progress else lambda line: None,
        )
        if dry_run and more:  # the cost of the worst case
            _estimate(report, misses + more, list(by_key.values()), model_cfg, sgen)
    table = rows_to_table(rows, split.schema)
    if outcomes is not None and ctx.memo is not None:
        ctx.memo.record(split.name, job.split_key, reused, new_outcomes(split.name, outcomes))
    if reused is not None:
        table, fails = merge_reused(report, table, fails, reused, keyed, dry_run)
    else:  # the same order however many inputs were reused
        fails = failures_table(sorted(fails, key=lambda f: f.id))
    if dry_run:
        # A damaged file of the split is made again by the run: its rows count as new.
        columns = ["id", "content_hash", "clip_id"]
        old = read_config_table(ctx.build_dir, split.name, columns, skip_unreadable=True)
        if report.pending:  # rows of captions still to be made are counted as they come
            pending = pa.array(sorted(report.pending), pa.string())
            old = old.filter(pc.invert(pc.is_in(old["clip_id"], value_set=pending)))
        report.rows_changed = changed_rows(old, table)
    report.seconds = time.perf_counter() - t0
    return report, table, fails


def _keyed(cache_id, requests, cache, retry):
    """Base key -> request, as sent now: {key: request}, {base key: key}, and the base
    keys whose attempt a retry moves on ({base key: new attempt})."""
    attempts = cache.attempts(requests)
    bumped: dict[str, int] = {}
    keyed: dict[str, GenerationRequest] = {}
    key_of: dict[str, str] = {}
    for base, req in requests.items():
        a = attempts.get(base, 0)
        key, sent = _attempt(cache_id, base, req, a)
        if key in retry:  # the failures name the key of the attempt that failed
            a = bumped[base] = a + 1
            key, sent = _attempt(cache_id, base, req, a)
        key_of[base] = key
        keyed[key] = replace(sent, request_id=key)
    return keyed, key_of, bumped


def _lookup(keyed, cache, sgen) -> dict[str, GenerationResponse]:
    """The cached responses of `keyed` that today's settings accept."""
    by_key = cache.get_many(keyed, sgen.n)
    # A sample cut at a smaller max_output_chars than today's is incomplete: re-send.
    for key in [k for k, r in by_key.items() if _cut_below(r, sgen.max_output_chars)]:
        del by_key[key]
    # The rest are kept as a new response is (`checked`): cut to today's bound, so a
    # warm cache parses what a build from scratch would.
    return {k: checked(r, sgen.n, sgen.max_output_chars) for k, r in by_key.items()}


def _shown_name(split: ModelSplit) -> str:
    """A split's name in progress lines; the revision check is told apart from the
    revisions it checks (both are reasoning_revised's)."""
    return f"{split.name} (independent check)" if split is CHECK else split.name


def _send(job, misses, ctx, report) -> dict[str, GenerationResponse]:
    split, sgen = job.split, job.sgen
    return send_misses(
        _shown_name(split),
        ctx.backend_for(job.model_cfg),
        [local_paths(r, ctx.build_dir) if split.needs_video else r for r in misses],
        ctx.cache,
        job.model_id,
        report,
        ctx.progress,
        n=sgen.n,
        max_chars=sgen.max_output_chars,
    )


def _fetch(job, ctx, report, items: dict[str, GenerationRequest]) -> Fetched:
    """target.py's `fetch`: key, look up and (not in a dry run) send `items`."""
    bases = {i: request_key(job.cache_id, r) for i, r in items.items()}
    keyed, key_of, bumped = _keyed(
        job.cache_id, {bases[i]: r for i, r in items.items()}, ctx.cache, ctx.retry
    )
    by_key = _lookup(keyed, ctx.cache, job.sgen)
    misses = [r for k, r in keyed.items() if k not in by_key]
    missed = {i for i, b in bases.items() if key_of[b] not in by_key}
    if misses and not ctx.dry_run:
        by_key.update(_send(job, misses, ctx, report))
    if bumped and not ctx.dry_run:
        ctx.cache.set_attempts(bumped)
    return Fetched({i: key_of[b] for i, b in bases.items()}, by_key, missed, misses)


def _parse_more(split, sgen, taxonomy, common_base, dry_run, plan, key_of, by_key, offsets):
    """target.py's `parse`: the rows, failures and counts of one step's responses."""
    counts, fails = SplitReport(split.name), []
    rows = _parse_all(
        split, plan, key_of, by_key, sgen, taxonomy, common_base, counts, fails, dry_run, offsets
    )
    return rows, fails, counts


def _estimate(report, misses, cached, model_cfg, sgen) -> None:
    """The dry run's cost of the misses (see estimate.py)."""
    count, report.prompt_tokens_from = prompt_counter(model_cfg)
    report.prompt_tokens_est = sum(count(r) for r in misses)
    report.output_tokens_est, report.output_tokens_from = output_tokens(
        cached, len(misses), sgen.n, sgen.max_tokens
    )
    report.gpu_hours_est = gpu_hours(model_cfg, len(misses), report.output_tokens_est)


def _attempt(
    model_id: str, base: str, req: GenerationRequest, a: int
) -> tuple[str, GenerationRequest]:
    """The key and request of attempt `a` (0: the request itself, under its base key)."""
    if not a:
        return base, req
    # vLLM samples request seed s as s, s+1, ..., s+n-1: step attempts by n so a retry
    # never repeats an earlier attempt's samples.
    seed = (req.sampling.seed or 0) + a * req.sampling.n
    req = replace(req, sampling=replace(req.sampling, seed=seed))
    return request_key(model_id, req, a), req


def _cut_below(resp: GenerationResponse, max_chars: int) -> bool:
    return any(
        c.finish_reason == OVERSIZED and len(c.text) + len(c.reasoning or "") < max_chars
        for c in resp.completions
    )


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
    offsets: dict[str, int] | None = None,
    per_input: dict[int, list] | None = None,
):
    """Parse the responses of `plan` ([(clip, base key)]) into rows, counting every
    sample in `report` and adding the failed ones to `fails`; `offsets`: the number of
    the first sample of a base key's request (target.py's rounds), 0 when absent;
    `per_input`: each input's outcome to fill in (`_reuse`)."""
    rows = []
    by_class: dict[str, list[int]] = {}  # label -> [samples, kept]
    for clip, base in plan:
        key = key_of[base]
        resp = by_key.get(key)
        if resp is None and cached_only:
            continue
        r0, f0, k0 = len(rows), len(fails), report.kept
        first = offsets.get(base, 0) if offsets else 0
        _parse_one(
            split,
            clip,
            key,
            resp,
            sgen,
            taxonomy,
            common_base,
            report,
            fails,
            rows,
            by_class,
            first,
        )
        if per_input is not None:
            per_input[id(clip)][1:6] = [
                key,
                sgen.n,
                report.kept - k0,
                [r.id for r in rows[r0:]],
                [f.id for f in fails[f0:]],
            ]
    counts = Counter(f.kind for f in fails)
    report.samples += counts.get("render", 0)  # samples whose prompt never rendered
    report.failed = dict(sorted(counts.items()))
    report.rows = len(rows)
    report.by_class = dict(sorted(by_class.items()))
    if not cached_only:
        Counts(f"{split.name} samples", report.samples, report.kept, failures=len(fails)).check()
    return sorted(rows, key=lambda r: r.id)


def _parse_one(
    split, clip, key, resp, sgen, taxonomy, common_base, report, fails, rows, by_class, first
) -> None:
    """Parse the `sgen.n` samples of one input's response (None: never received), from
    sample number `first` on, into `rows` or `fails`, counting them."""
    common = {
        "clip_id": clip.clip_id,
        "video_id": clip.video_id,
        "label": clip.label,
        "split": clip.split,
        "video": clip.video,
        **common_base,
    }
    for s in range(sgen.n):
        sample = first + s  # the sample's number in its clip's rows and failures
        report.samples += 1
        counts_of = by_class.setdefault(clip.label, [0, 0])
        counts_of[0] += 1
        if resp is None or resp.error is not None:
            reason = resp.error if resp is not None else "no response"
            fails.append(
                failure_row(
                    split,
                    clip,
                    sample,
                    "error",
                    reason,
                    None,
                    resp.attempts if resp else 0,
                    common_base,
                    key,
                )
            )
            continue
        if s >= len(resp.completions):  # never cached, but an import or a bug
            fails.append(
                failure_row(
                    split,
                    clip,
                    sample,
                    "error",
                    f"the response holds {len(resp.completions)} of {sgen.n} samples",
                    None,
                    resp.attempts,
                    common_base,
                    key,
                )
            )
            continue
        comp = resp.completions[s]
        if comp.finish_reason == OVERSIZED:
            reason = f"output longer than max_output_chars ({sgen.max_output_chars})"
            fails.append(
                failure_row(split, clip, sample, "parse", reason, comp, 1, common_base, key)
            )
            continue
        try:
            new = split.checked_parse(comp, clip, sample, dict(common), taxonomy)
        except Filtered as e:
            fails.append(
                failure_row(split, clip, sample, "filtered", str(e), comp, 1, common_base, key)
            )
            continue
        except ParseError as e:  # kind `parse`, or `degenerate` (a subclass)
            fails.append(
                failure_row(split, clip, sample, e.kind, str(e), comp, 1, common_base, key)
            )
            continue
        report.kept += 1
        counts_of[1] += 1
        rows.extend(new)


def _concat(failures: list[pa.Table]) -> pa.Table:
    return pa.concat_tables([FAILURES_SCHEMA.empty_table(), *failures])


def _by_side(table: pa.Table) -> dict[str, pa.Table]:
    # One chunk a column: the Parquet bytes then do not depend on how the rows came.
    return {
        side: table.filter(pc.equal(table["split"], side)).combine_chunks()
        for side in ("train", "test")
    }
