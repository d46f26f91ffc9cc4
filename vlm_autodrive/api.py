"""The Python API: what the `autodrive` commands do, as functions a notebook calls.

Each function runs the same stage code as its command (the CLI is a thin layer over
the same functions) and returns data instead of printing it: open a recipe, plan a
build (the dry run's table as data), run it, load a config as a `datasets.Dataset`,
show rows, mix, publish, evaluate. Bad input raises `ValueError` (or
`FileNotFoundError`) with the message the command would print after `autodrive: `.

Example, a whole build from the bundled quickstart recipe::

    import vlm_autodrive as ad

    recipe = ad.open_recipe("recipes/quickstart.yaml", {"build_dir": "build/nb"})
    plan = ad.plan(recipe)             # nothing is sent or written
    print(plan.to_send, plan.gpu_hours)
    result = ad.run(recipe)            # the build; resumes and skips finished work
    mcq = ad.load(result.build, "mcq")  # a datasets.DatasetDict (train, test)

Everything heavy (datasets, PyAV, the stages) is imported inside the functions:
`import vlm_autodrive` stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BuildResult",
    "Plan",
    "Recipe",
    "evaluate",
    "load",
    "mix",
    "open_recipe",
    "plan",
    "publish",
    "run",
    "show",
]


@dataclass
class Recipe:
    """A validated build recipe and the taxonomy it builds with.

    `config` is the recipe as validated (`BuildRecipe`: `config.chunk.window`, ...),
    `taxonomy` its label set (`taxonomy.names`), `taxonomy_path` the file it came from
    (None: the bundled one), `path` the recipe file.
    """

    path: Path
    config: Any
    taxonomy: Any
    taxonomy_path: str | None = None

    @property
    def build_dir(self) -> Path:
        """Where the recipe builds (its `build_dir`)."""
        return Path(self.config.build_dir)


def open_recipe(
    path: str | Path, overrides: Mapping[str, Any] | Iterable[str] | None = None
) -> Recipe:
    """Read and validate a build recipe and its taxonomy; check what the build would fail
    on later (files, folders, templates), as `autodrive build` does before any work.

    `path`: a recipe file, or a bundled recipe's name (`recipes/quickstart.yaml`).
    `overrides`: `{"chunk.window": 4.0}` or `["chunk.window=4.0"]` (values as YAML), as
    `autodrive build --set` takes them. Raises ValueError naming the file and key.

    >>> recipe = open_recipe("recipes/quickstart.yaml", {"chunk.window": 4.0})
    >>> recipe.config.chunk.window, recipe.taxonomy.names
    (4.0, ['Collision', 'Near-Collision', 'Normal Driving'])
    """
    from vlm_autodrive.builders.core.taxonomy import load_taxonomy
    from vlm_autodrive.builders.recipe import load_recipe, recipe_taxonomy
    from vlm_autodrive.preflight import check_build_recipe
    from vlm_autodrive.resources import resolve_recipe_path

    resolved = resolve_recipe_path(path)
    config = load_recipe(resolved, _override_strings(overrides))
    taxonomy_path = recipe_taxonomy(config)
    taxonomy = load_taxonomy(taxonomy_path)
    check_build_recipe(config, taxonomy, resolved)
    return Recipe(Path(resolved), config, taxonomy, taxonomy_path)


def _override_strings(overrides: Mapping[str, Any] | Iterable[str] | None) -> list[str]:
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):  # JSON is YAML: the values keep their types
        return [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    return [str(o) for o in overrides]


@dataclass
class Plan:
    """The dry run as data: what `autodrive build RECIPE --dry-run` prints, and the
    objects behind it.

    `exit_code` 0 (a plan never fails on rejects); `lines` the printed table;
    `ingest` (an IngestPreview: `videos`, `rejects`, `changed`), `chunk` (a ChunkPreview:
    `cut`, `recut`, `removed`, `clips`), `rule_splits` (`rule_changes`: config -> rows
    that would change) and `model_splits`: one SplitReport per model split (`cached`,
    `to_send`, `prompt_tokens_est`, `output_tokens_est`, `gpu_hours_est`).
    """

    exit_code: int
    lines: list[str]
    ingest: Any = None
    chunk: Any = None
    rule_splits: Any = None
    model_splits: list[Any] = field(default_factory=list)

    @property
    def requests(self) -> dict[str, dict[str, Any]]:
        """Per model split: {"cached", "to_send", "prompt_tokens", "output_tokens",
        "gpu_hours"} (gpu_hours None without a throughput in the recipe)."""
        return {
            r.name: {
                "cached": r.cached,
                "to_send": r.to_send,
                "prompt_tokens": r.prompt_tokens_est,
                "output_tokens": r.output_tokens_est,
                "gpu_hours": r.gpu_hours_est,
            }
            for r in self.model_splits
        }

    @property
    def to_send(self) -> int:
        """Requests the build would send, all model splits together."""
        return sum(r.to_send for r in self.model_splits)

    @property
    def gpu_hours(self) -> float | None:
        """GPU-hours of those requests (None when no split has a throughput)."""
        hours = [r.gpu_hours_est for r in self.model_splits if r.gpu_hours_est is not None]
        return sum(hours) if hours else None

    def __str__(self) -> str:
        return "\n".join(self.lines)


def plan(
    recipe: Recipe | str | Path, build: str | Path | None = None, *, out: Callable | None = None
) -> Plan:
    """Plan every stage as `run` would, writing and sending nothing (the dry run).

    `recipe`: an opened Recipe or a recipe path; `build`: the build folder (default: the
    recipe's `build_dir`); `out`: called with each printed line (default: kept only).

    On a finished build every request is cached (the numbers are this build's)::

    >>> p = plan(open_recipe("recipes/quickstart.yaml"))
    >>> p.exit_code, p.to_send
    (0, 0)
    >>> p.requests["caption_vlm"]  # doctest: +ELLIPSIS
    {'cached': 7, 'to_send': 0, 'prompt_tokens': 0, 'output_tokens': 0, 'gpu_hours': None}
    >>> print(p.lines[0])
    [dry run] nothing is sent or written
    """
    from vlm_autodrive.builders import pipeline

    recipe = recipe if isinstance(recipe, Recipe) else open_recipe(recipe)
    build = Path(build) if build is not None else recipe.build_dir
    lines: list[str] = []
    state: dict[str, Any] = {}

    def keep(line: str) -> None:
        lines.append(line)
        if out is not None:
            out(line)

    with _lock(build, "vlm_autodrive.api.plan", create=False):
        code = pipeline.plan(
            recipe.config, build, recipe.taxonomy, pipeline.Options(progress=False), keep, state
        )
    return Plan(
        code,
        lines,
        state.get("ingest"),
        state.get("chunk"),
        state.get("rule_splits"),
        list(state.get("model_splits") or []),
    )


@dataclass
class BuildResult:
    """What `run` did: `exit_code` (0 done, 3 done with rejects or failed samples, as
    the command's), the `build` folder, its `configs` ({config: {split: rows}}, from
    provenance.json), the `model_splits` reports and the printed `lines`."""

    exit_code: int
    build: Path
    configs: dict[str, dict[str, int]]
    model_splits: list[Any] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was rejected and no sample failed (exit code 0)."""
        return self.exit_code == 0

    def load(self, config: str, side: str | None = None):
        """`load(self.build, config, side)`."""
        return load(self.build, config, side)


def run(
    recipe: Recipe | str | Path,
    build: str | Path | None = None,
    *,
    out: Callable[[str], None] | None = print,
    **options: Any,
) -> BuildResult:
    """Run the build: every stage in order, each resuming or skipping finished work.

    `options` are how to run, as the command's flags: `force`, `retry_failed`, `engine`
    ("local" or "ray"), `progress` (bars; default True), `prune_missing`. `out` gets each
    summary line (default: printed; None: kept only). Raises ValueError for bad input
    (nothing done); a model server that cannot be reached raises BackendUnavailable.

    >>> result = run(open_recipe("recipes/quickstart.yaml"), out=None)
    >>> result.exit_code, result.configs["mcq"]
    (0, {'test': 3, 'train': 4})
    >>> result.load("mcq", "train").num_rows
    4
    """
    from vlm_autodrive.builders import pipeline

    recipe = recipe if isinstance(recipe, Recipe) else open_recipe(recipe)
    build = Path(build) if build is not None else recipe.build_dir
    lines: list[str] = []
    state: dict[str, Any] = {}

    def keep(line: str) -> None:
        lines.append(line)
        if out is not None:
            out(line)

    opts = pipeline.Options(**options)  # TypeError names an unknown option
    with _lock(build, "vlm_autodrive.api.run"):
        code = pipeline.run(recipe.config, build, recipe.taxonomy, opts, keep, state)
    return BuildResult(code, build, _configs(build), list(state.get("model_splits") or []), lines)


def _configs(build: Path) -> dict[str, dict[str, int]]:
    """{config: {split: rows}} as the folder's provenance.json records them."""
    try:
        prov = json.loads((Path(build) / "provenance.json").read_text())
    except (OSError, ValueError):
        return {}
    return {
        name: {side: int(s.get("rows", 0)) for side, s in (c.get("splits") or {}).items()}
        for name, c in (prov.get("configs") or {}).items()
    }


def load(build_or_hub_id: str | Path, config: str, side: str | None = None):
    """A config of a build or release folder, or of a published dataset
    `ORG/NAME[@vX.Y.Z]` (downloaded into the Hugging Face cache), as `datasets` loads it.

    `side`: "train" or "test" for a `datasets.Dataset`; None for the `DatasetDict` of
    every side the config has. Clip paths (`video`) are relative to the folder.

    >>> mcq = load("build/quickstart", "mcq")
    >>> sorted(mcq), mcq["train"].num_rows
    (['test', 'train'], 4)
    >>> load("build/quickstart", "mcq", "test")[0]["answer"]  # doctest: +ELLIPSIS
    '...'
    >>> rows = load("org/dashcam-events@v0.1.0", "mcq", "test")  # doctest: +SKIP
    """
    import datasets

    from vlm_autodrive.builders.release.hub_ids import resolve_build

    folder = resolve_build(build_or_hub_id, [f"data/{config}/**"])
    if folder == Path(build_or_hub_id).expanduser():  # a folder: as its card declares it
        return datasets.load_dataset(str(folder), config, split=side)
    # A Hub snapshot holds this config's files only: read them by the release's record.
    from vlm_autodrive.builders.dataset.folder import data_files

    files = data_files(folder, config)
    if not files or (side is not None and side not in files):
        have = ", ".join(sorted(files)) or "none"
        raise ValueError(
            f"{build_or_hub_id}: config {config!r} has no {side or 'data'} (sides: {have})"
        )
    files = {s: str(folder / f) for s, f in files.items() if side is None or s == side}
    return datasets.load_dataset("parquet", data_files=files, split=side)


def show(
    build_or_hub_id: str | Path,
    config: str,
    *,
    split: str | None = None,
    where: Mapping[str, str] | None = None,
    n: int = 10,
    html: str | Path | None = None,
) -> str:
    """Rows of a config as `autodrive show` prints them (question, lettered options with
    the answer marked, caption, reasoning, clip, where each row came from).

    `where`: {column: value} pairs every shown row matches; `n`: rows (0 = all); `html`:
    write a web page there instead (each row beside its clip) and return its summary.

    >>> text = show("build/quickstart", "mcq", where={"label": "Collision"}, n=1)
    >>> print(text.splitlines()[-1])
    showing 1 of 2 rows of mcq matching label=Collision (train 1, test 1); 7 rows in train+test
    """
    from vlm_autodrive.builders.dataset.show import select_rows
    from vlm_autodrive.builders.release.hub_ids import parse_hub_id, resolve_build, snapshot

    folder = resolve_build(build_or_hub_id, [f"data/{config}/**"])
    pairs = [(str(k), str(v)) for k, v in (where or {}).items()]
    sel = select_rows(folder, config, split=split, where=pairs, limit=n)
    if html is None:
        from vlm_autodrive.builders.dataset.show_text import format_text

        return format_text(sel)
    if folder != Path(build_or_hub_id).expanduser():  # a Hub dataset: fetch the rows' clips
        clips = sorted({r.video for r in sel.rows if r.video})
        if clips:
            repo, rev = parse_hub_id(str(build_or_hub_id))  # type: ignore[misc]
            snapshot(repo, rev, clips, where=str(build_or_hub_id))
            sel = select_rows(folder, config, split=split, where=pairs, limit=n)
    from vlm_autodrive.builders.dataset.show_html import write_page

    write_page(sel, Path(html))
    return sel.summary()


def mix(recipe: str | Path, build: str | Path, *, force: bool = False):
    """Mix configs of `build` into SFT conversations by a mixture recipe (the config
    `mix-NAME`), as `autodrive mix`. Returns a MixResult (`config`, `report`: rows per
    component and class; `format()` the printed table); up to date: `skipped`.

    >>> res = mix("recipes/mixtures/quickstart.yaml", "build/quickstart")
    >>> res.config, res.skipped
    ('mix-quickstart', False)
    """
    from vlm_autodrive.builders.mix.stage import mix as run_mix
    from vlm_autodrive.resources import resolve_recipe_path

    with _lock(Path(build), "vlm_autodrive.api.mix", create=False):
        return run_mix(resolve_recipe_path(recipe), build, force=force)


def publish(build: str | Path, version: str, *, repo: str | None = None, **settings: Any):
    """Release `build` as `version` (X.Y.Z): to the Hub dataset `repo` (tag vX.Y.Z), or
    with `to=FOLDER` as FOLDER/vX.Y.Z. `settings`: `to`, `dry_run`, `private`, `license`,
    `previous`, `allow_older`, as `autodrive publish` takes them. Returns a PublishResult
    (`where`, `plan`, `changelog`); a version already there raises ValueError.

    >>> res = publish("build/quickstart", "0.1.0", to="releases")
    >>> res.where
    'releases/v0.1.0'
    >>> publish("build/quickstart", "0.2.0", repo="org/dashcam-events")  # doctest: +SKIP
    """
    from vlm_autodrive.builders.release.publish import publish as run_publish

    with _lock(Path(build), "vlm_autodrive.api.publish", create=False):
        return run_publish(build, version, repo=repo, **settings)


def evaluate(model: str, dataset: str | Path, **settings: Any):
    """Evaluate `model` on the MCQ test split of `dataset` (a folder or a Hub id
    `ORG/NAME[@vX.Y.Z]`), as `autodrive eval`. `settings` are EvalConfig's (`config`,
    `split`, `modes`, `runner`, `base_url`, `out`, `limit`, ...). Returns an EvalResult:
    `report` (per mode: accuracy, per-class metrics), `out` (report.md, predictions).

    With a model served by `vllm serve` (tests/test_api.py runs this against a stand-in
    server)::

        res = evaluate("served-vlm", "build/quickstart", base_url="http://127.0.0.1:8000/v1")
        print(res.report["results"][0]["metrics"]["accuracy"])
    """
    from vlm_autodrive.trainer.eval.harness import EvalConfig, run_eval

    if "modes" in settings and isinstance(settings["modes"], str):
        settings["modes"] = (settings["modes"],)
    return run_eval(EvalConfig(model=model, dataset=str(dataset), **settings), log=_quiet)


def _quiet(line: str) -> None:
    import logging

    logging.getLogger("vlm_autodrive.api").info(line)


def _lock(build: Path, command: str, *, create: bool = True):
    """The build folder's lock, as the commands take it (a release folder is refused)."""
    from vlm_autodrive.builders.core.lock import build_lock
    from vlm_autodrive.builders.release.readonly import refuse_release_folder

    refuse_release_folder(build)
    return build_lock(build, command, create=create)
