"""The build pipeline: the one ordered list of stages, each with what it reads.

In: a validated build recipe, its build folder and taxonomy, and how to run (`Options`:
force, retry, engine, workers: none of them an input). Out: each stage's outputs in the
build folder, or, for the dry run, the same walk with nothing written or sent.

`PIPELINE` lists the stages in order. A stage's `Inputs` is its one declaration of what
it is made from: the upstream stages whose recorded outputs it reads, the recipe
sections it reads (their values as `fingerprint.input_values` gives them: settings
marked NOT_AN_INPUT left out, paths replaced by the content of what they name), whether
it reads the taxonomy and the models, and the code it runs (its entry modules; the
project modules they import are followed). `declared_key` is the one function that turns
a declaration into a key; the stages mix it into their stamps (and chunk into each
video's part, the model splits into nothing finer: their requests are keyed on what each
one holds). `run` and `plan` (the dry run) walk the same list; the CLI's `build`, its
`--dry-run` and a Python caller all go through them, as do `autodrive ingest` and
`autodrive chunk` (`declared_key` with the values they were given).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.files import read_json
from vlm_autodrive.builders.core.fingerprint import code_fingerprint, input_values
from vlm_autodrive.builders.core.stage import STAMP, content_key

P = "vlm_autodrive.builders"


@dataclass(frozen=True)
class Inputs:
    """What a stage is made from (see the module)."""

    upstream: tuple[str, ...] = ()  # stages whose recorded outputs it reads
    recipe: tuple[str, ...] = ()  # recipe sections (dotted) whose input values it reads
    code: tuple[str, ...] = ()  # entry modules; their project imports are followed
    taxonomy: bool = False  # the label set (names, options, phrases)
    models: bool = False  # the models of `generate.models` that its splits use


@dataclass(frozen=True)
class StageSpec:
    """One stage: its name (its folder in the build), its inputs, and how it runs and is
    planned (functions of the `Walk`)."""

    name: str
    inputs: Inputs
    run: Callable[[Walk], int]
    plan: Callable[[Walk], int]


@dataclass
class Options:
    """How to run: never an input of any stage."""

    force: bool = False  # re-cut with other chunk settings
    retry_failed: bool = False
    engine: str | None = None  # None: the recipe's
    chunk: Any = None  # the chunk settings as the command line left them (None: recipe's)
    progress: bool = True
    prune_missing: bool = False  # drop videos whose file is missing (else: stop, exit 2)


@dataclass
class Walk:
    """One walk of the pipeline: the recipe, the build folder and what each stage left
    for the next (the dry run's plans are kept in `state`)."""

    recipe: Any
    build: Path
    taxonomy: Any
    options: Options
    dry_run: bool = False
    out: Callable[[str], None] = print
    state: dict[str, Any] = field(default_factory=dict)

    def key(self, stage: str, upstream: bool = True) -> str:
        return declared_key(stage, self.values, self.taxonomy, self.build, upstream)

    @property
    def values(self) -> dict[str, Any]:
        """The recipe as the declarations read it (chunk settings as the command line
        left them)."""
        values = dict(self.recipe)
        if self.options.chunk is not None:
            values["chunk"] = self.options.chunk
        return values

    @property
    def chunk(self) -> Any:
        return self.options.chunk if self.options.chunk is not None else self.recipe.chunk


def _section(values: Any, dotted: str) -> Any:
    node = values
    for part in dotted.split("."):
        if node is None:
            return None
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
    return node


def declared_key(
    stage: str, values: Any, taxonomy: Any, build_dir: Path | None, upstream: bool = True
) -> str:
    """The key of `stage`'s declared inputs: the recorded output hashes of its upstream
    stages in `build_dir` (the stamps they wrote), the input values of the recipe
    sections it reads from `values` (a recipe, or a dict of sections), the taxonomy, the
    models' identities and its code. No path enters it. `upstream` False leaves the
    upstream outputs out: for a key per item (chunk's per video), which holds its own
    part of them (the video's fingerprint) instead of the whole table."""
    inputs = SPECS[stage].inputs
    key: dict[str, Any] = {"stage": stage, "code": code_fingerprint(inputs.code)}
    data = input_values(values)  # the field markers of the recipe's models apply
    key["recipe"] = {s: _section(data, s) for s in inputs.recipe}
    if inputs.taxonomy:
        key["taxonomy"] = content_key(taxonomy.model_dump(mode="json"))
    if inputs.models:
        key["models"] = _model_identities(_section(values, "generate"), build_dir)
    if inputs.upstream and upstream:
        key["upstream"] = {u: _recorded_outputs(build_dir, u) for u in inputs.upstream}
    return content_key(key)


def _recorded_outputs(build_dir: Path | None, stage: str) -> dict[str, str] | None:
    """{output: sha256} as `stage`'s stamp records them (None: no stamp yet)."""
    if build_dir is None:
        return None
    try:
        return read_json(Path(build_dir) / stage / STAMP).get("outputs")
    except (OSError, ValueError):
        return None


def upstream_outputs(stage: str, build_dir: Path) -> dict[str, str]:
    """{output: sha256} of every output the upstream stages of `stage` record now (what a
    stage commits as read: publish compares them with the upstream stamps later)."""
    out: dict[str, str] = {}
    for upstream in SPECS[stage].inputs.upstream:
        out.update(_recorded_outputs(build_dir, upstream) or {})
    return out


def _model_identities(gen: Any, build_dir: Path | None) -> dict[str, str]:
    """The identity of every model a split of `gen` uses (by role)."""
    if gen is None:
        return {}
    used = {s.model for s in gen.configs.values() if not s.import_file}
    used |= {s.check.model for s in gen.configs.values() if s.check is not None}
    # Weights are hashed once and memoised beside the response cache (read, not
    # written, when that folder does not exist yet: a dry run writes nothing).
    memo = Path(build_dir) / "cache" if build_dir and (Path(build_dir) / "cache").is_dir() else None
    return {role: gen.models[role].identity(memo) for role in sorted(used) if role in gen.models}


# --- the stages ------------------------------------------------------------------------


def _run_sample(w: Walk) -> int:
    recipe = w.recipe
    manifest = Path(recipe.manifest)
    if recipe.sample and not manifest.exists():
        from vlm_autodrive.builders.synthetic.sample import generate_sample

        s = recipe.sample
        w.out(f"[sample] generating {s.videos} synthetic videos in {manifest.parent}")
        generate_sample(manifest.parent, **s.model_dump(), progress=w.options.progress)
    w.state["manifest"] = manifest
    return 0


def _plan_sample(w: Walk) -> int:
    recipe = w.recipe
    manifest = Path(recipe.manifest)
    if recipe.sample and not manifest.exists():
        import tempfile

        from vlm_autodrive.builders.synthetic.sample import generate_sample

        s = recipe.sample
        tmp = tempfile.TemporaryDirectory(prefix="dry-run-")
        w.state["cleanup"] = tmp  # deleted when the walk ends
        w.out(f"[sample] would generate {s.videos} videos (planned from a temporary copy)")
        manifest = generate_sample(Path(tmp.name), **s.model_dump())
    w.state["manifest"] = manifest
    return 0


def _ingest_args(w: Walk) -> tuple:
    """The manifest, build folder, taxonomy and workers: ingest's run and plan alike."""
    from vlm_autodrive.builders.core.sections import worker_count

    return w.state["manifest"], w.build, w.taxonomy, worker_count(w.chunk.workers)


def _ingest_settings(w: Walk) -> dict:
    """The ingest settings and declared key its run and plan both take."""
    return {
        "prune_missing": w.options.prune_missing,
        "duplicates": w.recipe.ingest.duplicates,
        "near_duplicates": w.recipe.ingest.near_duplicates,
        "declared": w.key("ingest"),
    }


def _run_ingest(w: Walk) -> int:
    from vlm_autodrive.builders.ingest.stage import run_ingest

    w.out(f"[ingest] {w.state['manifest']}")
    res = run_ingest(*_ingest_args(w), progress=w.options.progress, **_ingest_settings(w))
    from vlm_autodrive.cli_output import print_ingest

    print_ingest(res, w.build, w.out)
    return 3 if res.rejects else 0


def _plan_ingest(w: Walk) -> int:
    from vlm_autodrive.builders.ingest.stage import preview_ingest

    ing = preview_ingest(*_ingest_args(w), **_ingest_settings(w))
    w.state["ingest"] = ing
    w.out(
        f"[ingest] {'would record' if ing.changed else 'up to date:'} "
        f"{len(ing.videos)} videos, {ing.rejects} rejected"
    )
    return 0


def _run_chunk(w: Walk) -> int:
    gen = w.recipe.generate
    if gen and any(m.backend == "ray" for m in gen.models.values()):
        from vlm_autodrive.builders.core.ray_cluster import connect

        connect(w.recipe.ray)  # the model splits' `ray` backend joins the same cluster
    w.out("[chunk]")
    engine = w.options.engine or w.recipe.engine
    res = run_chunk_stage(w.build, w.chunk, w.taxonomy, w.options, engine, w.recipe.ray, w.out)
    return 3 if res.rejects else 0


def run_chunk_stage(build, config, taxonomy, options, engine="local", ray=None, out=print):
    """The chunk stage with its declared key, as `build` and `autodrive chunk` run it;
    prints its summary and returns its ChunkResult."""
    from vlm_autodrive.builders.clips.stage import ChunkSettingsChanged, run_chunk
    from vlm_autodrive.builders.core.sections import worker_count
    from vlm_autodrive.cli_output import print_chunk

    if engine == "ray":
        import ray as ray_lib

        from vlm_autodrive.builders.core.ray_cluster import connect

        connect(ray)
        cpus = ray_lib.cluster_resources().get("CPU", 0)
        out(f"  engine ray: {len(ray_lib.nodes())} node(s), {cpus:g} CPUs")
    try:
        res = run_chunk(
            build,
            config,
            taxonomy,
            worker_count(config.workers),
            force=options.force,
            progress=options.progress,
            engine=engine,
            ray=ray,
            declared=declared_key("chunk", {"chunk": config}, taxonomy, build, upstream=False),
        )
    except ChunkSettingsChanged as e:
        raise ValueError(str(e)) from None
    print_chunk(res, build, out)
    return res


def _plan_chunk(w: Walk) -> int:
    from vlm_autodrive.builders.clips.preview import preview_chunk
    from vlm_autodrive.builders.clips.stage import ChunkSettingsChanged

    ing = w.state["ingest"]
    try:
        ch = preview_chunk(
            w.build,
            ing.videos,
            ing.same_file,
            w.chunk,
            w.taxonomy,
            w.options.force,
            declared=w.key("chunk", upstream=False),
        )
    except ChunkSettingsChanged as e:
        raise ValueError(str(e)) from None
    w.state["chunk"] = ch
    w.out(
        f"[chunk] would cut {ch.cut} videos ({ch.recut} of them again), remove "
        f"{ch.removed}: {len(ch.clips)} clips, {ch.rejected} videos rejected"
    )
    return 0


def _run_rules(w: Walk) -> int:
    from vlm_autodrive.builders.rules.stage import build_rule_splits

    w.out("[rule splits]")
    splits = build_rule_splits(
        w.build,
        w.recipe.rules,
        w.taxonomy,
        recipe_record(w.recipe),
        declared=w.key("rule_splits"),
    )
    w.out(splits.format())
    gen = w.recipe.generate
    if gen and gen.configs:  # the model splits can take hours: the rule configs load now
        configs = ", ".join(sorted(splits.configs))
        w.out(
            f"rule configs ready ({configs}): datasets.load_dataset(BUILD, CONFIG) reads them "
            "now, while the model splits run"
        )
    return 0


def _plan_rules(w: Walk) -> int:
    from vlm_autodrive.builders.generate.preview import plan_rules

    preview = plan_rules(
        w.build,
        w.recipe,
        w.taxonomy,
        w.state["ingest"],
        w.state["chunk"],
        lambda: w.key("rule_splits"),
    )
    for line in preview.lines:
        w.out(line)
    w.state["clips"] = preview.clips
    w.state["rule_splits"] = preview
    return 0


def _run_models(w: Walk) -> int:
    return _model_splits(w, dry_run=False)


def _plan_models(w: Walk) -> int:
    return _model_splits(w, dry_run=True)


def _model_splits(w: Walk, dry_run: bool) -> int:
    gen = w.recipe.generate
    if not gen or not gen.configs:
        if dry_run:
            w.out("the recipe names no model splits (generate.configs): nothing to send")
        return 0
    from vlm_autodrive.builders.generate.report import format_reports
    from vlm_autodrive.builders.generate.stage import run_model_splits

    w.out("[model splits]" + (" dry run: nothing is sent or written" if dry_run else ""))
    reports = run_model_splits(
        w.build,
        gen,
        w.taxonomy,
        dry_run=dry_run,
        retry_failed=w.options.retry_failed,
        progress=w.options.progress,
        clips=w.state.get("clips") if dry_run else None,
        declared=None if dry_run else w.key("model_splits"),
    )
    w.state["model_splits"] = reports  # for a caller of run/plan (the Python API)
    w.out(format_reports(reports, dry_run=dry_run))
    failed = sum(sum(v for k, v in r.failed.items() if k != "filtered") for r in reports)
    return 0 if dry_run or not failed else 3


def _run_audit(w: Walk) -> int:
    from vlm_autodrive.builders.audit.stage import run_audit

    settings = w.recipe.audit
    if not settings.after_build:
        return 0
    w.out("[audit]")
    report = run_audit(w.build, plots=settings.plots, declared=w.key("audit"))
    w.out(report.summary())
    return 0


def _plan_audit(w: Walk) -> int:
    if w.recipe.audit.after_build:
        w.out("[audit] would run: blind baselines, duplicates, statistics (no requests)")
    return 0


# The ordered stages and their declarations. A new stage is one entry here and one
# package under builders/.
PIPELINE: tuple[StageSpec, ...] = (
    StageSpec(
        "sample",
        Inputs(recipe=("sample",), code=(f"{P}.synthetic.sample",)),
        _run_sample,
        _plan_sample,
    ),
    StageSpec(
        "ingest",
        Inputs(recipe=("ingest",), taxonomy=True, code=(f"{P}.ingest.stage",)),
        _run_ingest,
        _plan_ingest,
    ),
    StageSpec(
        "chunk",
        Inputs(upstream=("ingest",), recipe=("chunk",), taxonomy=True, code=(f"{P}.clips.stage",)),
        _run_chunk,
        _plan_chunk,
    ),
    StageSpec(
        "rule_splits",
        Inputs(
            upstream=("ingest", "chunk"),
            recipe=("rules",),
            taxonomy=True,
            code=(f"{P}.rules.stage",),
        ),
        _run_rules,
        _plan_rules,
    ),
    StageSpec(
        "model_splits",
        Inputs(
            upstream=("rule_splits", "chunk"),
            recipe=("generate",),
            taxonomy=True,
            models=True,
            code=(f"{P}.generate.stage",),
        ),
        _run_models,
        _plan_models,
    ),
    StageSpec(
        "audit",
        Inputs(
            upstream=("ingest", "chunk", "rule_splits", "model_splits"),
            recipe=("audit",),
            code=(f"{P}.audit.stage",),
        ),
        _run_audit,
        _plan_audit,
    ),
)


def _own_command(w: Walk) -> int:
    raise RuntimeError("this stage runs by its own command, not in the build's walk")


# Stages run by their own command after a build (`autodrive mix`), declared like the
# others so their keys come from the same function; not walked by `run` or `plan`.
MIX = StageSpec(
    "mix",
    Inputs(upstream=("rule_splits", "model_splits"), taxonomy=True, code=(f"{P}.mix.stage",)),
    _own_command,
    _own_command,
)
SPECS = {s.name: s for s in (*PIPELINE, MIX)}


def recipe_record(recipe: Any) -> dict[str, Any]:
    """The recipe as provenance.json records it: every setting a stage declares as an
    input (how it was run left out), as plain JSON."""
    import json

    data = recipe.model_dump(mode="json", exclude={"build_dir", "engine", "ray"})
    if isinstance(data.get("chunk"), dict):
        data["chunk"].pop("workers", None)
    return json.loads(json.dumps(data, default=str, sort_keys=True))


def run(
    recipe: Any,
    build: Path,
    taxonomy: Any,
    options: Options | None = None,
    out: Callable[[str], None] = print,
    state: dict[str, Any] | None = None,
) -> int:
    """Run every stage in order; the exit code (0, or 3 when some inputs were rejected or
    samples failed). `state`, when given, is the walk's: it holds what the stages left
    (`model_splits`: their SplitReports)."""
    walk = Walk(recipe, Path(build), taxonomy, options or Options(), False, out)
    walk.state = state if state is not None else walk.state
    return _walk(walk, "run")


def plan(
    recipe: Any,
    build: Path,
    taxonomy: Any,
    options: Options | None = None,
    out: Callable[[str], None] = print,
    state: dict[str, Any] | None = None,
) -> int:
    """The dry run: every stage planned in order, nothing written or sent. `state`, when
    given, is the walk's: the plans are left in it (`ingest`, `chunk`, `rule_splits`,
    `model_splits`)."""
    walk = Walk(recipe, Path(build), taxonomy, options or Options(), True, out)
    walk.state = state if state is not None else walk.state
    out("[dry run] nothing is sent or written")
    return _walk(walk, "plan")


def _walk(walk: Walk, how: str) -> int:
    code = 0
    try:
        for spec in PIPELINE:
            code = max(code, getattr(spec, how)(walk))
    finally:
        tmp = walk.state.pop("cleanup", None)
        if tmp is not None:
            tmp.cleanup()
        sys.stdout.flush()
    return code
