"""The mix stage: a mixture recipe + a build folder -> the config `mix-<name>` of the dataset.

In: `recipes/mixtures/<name>.yaml` (see builders/mix/recipe.py) and a build folder whose
configs it names. Out, in the build folder:

- `data/mix-<name>/<side>-<hash>.parquet` (named by content): one row per drawn row and copy,
  with `id` (the source id XOR a hash of the config and the copy index: stable, unique,
  builders/mix/ids.py), `source_id`, `source_config`,
  `copy` (0 the row itself, 1.. its upsampled copies), `clip_id`, `video_id`, `label`,
  `split`, `video`, `content_hash` (changes with the source text or the format) and
  `messages` (builders/mix/conversations.py);
- `mix/<name>/class_distribution.png`: classes before and after upsampling;
- provenance.json (`stages.mix-<name>`: recipe, inputs, system prompt hashes, counts) and
  the card, which declares the config and shows the counts table and the plot.

Streaming: a first pass (here) reads only `id` and `label` of each source to decide how
many copies of each row go in (`ComponentPlan.copies`); the second pass
(builders/mix/batches.py) reads the sources in record batches, takes and converts their
rows with Arrow kernels and appends them to a ParquetWriter. No row ever becomes a
Python dict, so memory stays flat in the row count.

Drawing `count`/`fraction` rows ranks rows by a hash of (seed, row id): the draw depends
on the seed and the ids only, not on row order, and a rebuild that adds or drops a few
rows keeps the rest of the draw (so the changelog of a mixture stays small).
Rows are written grouped by component, in source order; training shuffles them.
Re-running with the same recipe, sources and prompts does no work.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlm_autodrive.builders.core.files import file_sha256, read_json, text_sha256
from vlm_autodrive.builders.core.freshness import first_stale_stage, stage_stamps
from vlm_autodrive.builders.core.ranking import seeded_ranks
from vlm_autodrive.builders.core.stage import STAMP, Stage, content_key
from vlm_autodrive.builders.dataset.folder import DATA_DIR, PROVENANCE, register_config
from vlm_autodrive.builders.mix.batches import ComponentPlan, write_side
from vlm_autodrive.builders.mix.conversations import has_reasoning, load_system_prompt
from vlm_autodrive.builders.mix.recipe import (
    Component,
    MixtureError,
    MixtureRecipe,
    check_against_build,
    load_mixture,
    mixture_name,
)

MIX_PREFIX = "mix-"
REPORT_DIR = "mix"
PLOT_NAME = "class_distribution.png"


@dataclass
class MixResult:
    """What the stage did; `format()` is the text the CLI prints."""

    name: str
    config: str
    build_dir: str
    report: dict[str, Any]
    plot: str | None
    skipped: bool = False
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        from vlm_autodrive.builders.mix.report import text_table

        head = f"mixture {self.name} -> {self.build_dir}/{DATA_DIR}/{self.config}"
        lines = [head + ("  (up to date, nothing to do)" if self.skipped else "")]
        lines.append(text_table(self.report))
        if self.plot:
            lines.append(f"class distribution plot: {self.build_dir}/{self.plot}")
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f'load it with: datasets.load_dataset("{self.build_dir}", "{self.config}")')
        return "\n".join(lines)


def mix(recipe_path: str | Path, build_dir: str | Path, *, force: bool = False) -> MixResult:
    """Write the mixture of `recipe_path` into `build_dir` (see the module docstring).

    Raises MixtureError (a ValueError) for a bad recipe or one the build cannot satisfy,
    FileNotFoundError for a build without configs or a missing system prompt.
    """
    import pyarrow.parquet as pq

    from vlm_autodrive.builders.core.taxonomy import build_taxonomy

    recipe_path, build_dir = Path(recipe_path), Path(build_dir)
    recipe = load_mixture(recipe_path)
    name = mixture_name(recipe, recipe_path)
    config = MIX_PREFIX + name
    prov_path = build_dir / PROVENANCE
    if not prov_path.exists():
        raise FileNotFoundError(f"{prov_path} not found: build the configs first (autodrive build)")
    prov = read_json(prov_path)
    # Rows made from upstream outputs that changed since (relabel + `autodrive ingest` +
    # `autodrive chunk`) would be mixed as if current: publish would refuse them later.
    stale = first_stale_stage(stage_stamps(build_dir, mixtures=False), prov)
    if stale is not None:
        raise MixtureError(
            f"{build_dir}: the {stale.stage} stage was made from an older {stale.input} "
            f"(the {stale.upstream} stage has run since), so its rows are out of date: run "
            f"`autodrive build RECIPE --build {build_dir}` first, then mix"
        )
    sources = {k: v for k, v in prov.get("configs", {}).items() if not k.startswith(MIX_PREFIX)}
    columns = {
        k: pq.read_schema(build_dir / next(iter(v["splits"].values()))["path"]).names
        for k, v in sources.items()
    }
    taxonomy = build_taxonomy(prov)  # the label set the build recorded, not a guess
    check_against_build(recipe, recipe_path, sources, columns, taxonomy.names)

    fmt = recipe.conversation
    prompts = {
        n: load_system_prompt(n, recipe_path.parent)
        for n in {fmt.system_prompt, fmt.reasoning_system_prompt} - {None}
    }
    inputs = {
        c.config: {s: v["sha256"] for s, v in sources[c.config]["splits"].items()}
        for c in recipe.components
    }
    from vlm_autodrive.builders.pipeline import declared_key

    recipe_dict = recipe.model_dump(mode="json")
    # The declared inputs (the mix code and everything it imports, the taxonomy) by the
    # pipeline's function; the configs it reads by their recorded sha256 (`inputs`).
    declared = declared_key("mix", {}, taxonomy, build_dir, upstream=False)
    key = content_key(
        {
            "declared": declared,
            "recipe": recipe_dict,
            "name": name,
            "inputs": inputs,
            "prompts": {n: text_sha256(t) for n, t in prompts.items()},
        }
    )
    stage = Stage(build_dir, f"{REPORT_DIR}/{name}")
    if not force and (done := stage.finished(key)) is not None:
        return MixResult(name, config, str(build_dir), done["report"], done.get("plot"), True)
    drawn = _drawn_plot(stage)  # read before the stamp goes
    stage.invalidate()

    # Every side is planned (and every count checked) before anything is written.
    planned = {
        side: [
            _plan(i, c, side, recipe, recipe_path, build_dir, sources, columns, prompts)
            for i, c in enumerate(recipe.components)
        ]
        for side in recipe.splits
    }
    report: dict[str, Any] = {"sides": {s: _side_report(p) for s, p in planned.items()}}
    if not any(side["written"] for side in report["sides"].values()):
        raise MixtureError(f"{recipe_path}: the mixture has no rows on {recipe.splits}")
    files: dict[str, str] = {}  # side -> data file; a side without rows has none
    for side, plans in planned.items():
        rel = write_side(build_dir, config, side, plans)
        if rel is not None:
            files[side] = rel
    plot_rel, plot_key, notes = _plot(build_dir, name, report, drawn)
    test = report["sides"].get("test")
    if test and (copies := test["written"] - sum(test["before"].values())):
        notes.append(
            f"the test side holds {copies} upsampled copies of its rows: an evaluation on "
            "it counts those rows more than once (upsampling is for training)"
        )
    described = "; ".join(f"{c.config} ({c.amount})" for c in recipe.components)
    # Declares the new files, then removes the config's old ones (sides no longer mixed).
    register_config(
        build_dir,
        config,
        files=files,
        description=recipe.description or f"Conversations for SFT, mixed from {described}.",
        generator=f"mix:{name}",
        template=f"{recipe_path.name}@{key[:12]}",
        stage=config,
        stage_info={
            "kind": "mixture",
            "config": config,
            "key": key,
            "recipe_path": shown_recipe_path(recipe_path),
            "recipe": recipe_dict,
            "inputs": inputs,
            "system_prompts": {n: text_sha256(t) for n, t in sorted(prompts.items())},
            "report": report,
            "plot": plot_rel,
        },
    )
    stage.commit(
        key,
        [*files.values(), *([plot_rel] if plot_rel else [])],
        {"report": report, "plot": plot_rel, "plot_key": plot_key},
    )
    return MixResult(name, config, str(build_dir), report, plot_rel, notes=notes)


def shown_recipe_path(recipe_path: Path) -> str:
    """How provenance and the card name a mixture recipe: `recipes/...` for a bundled
    one, else its file name; never an absolute path (it says where a machine keeps its
    files, and would make the same mixture's provenance differ between machines)."""
    from vlm_autodrive.resources import bundled

    try:
        return (
            "recipes/" + recipe_path.resolve().relative_to(bundled("recipes").resolve()).as_posix()
        )
    except ValueError:
        return recipe_path.name


def _plan(
    index: int,
    comp: Component,
    side: str,
    recipe: MixtureRecipe,
    recipe_path: Path,
    build_dir: Path,
    sources: dict[str, Any],
    columns: dict[str, list[str]],
    prompts: dict[str, str],
) -> ComponentPlan:
    """Copies per source row of one component on one side (first pass: labels, and ids
    for a draw)."""
    import pyarrow.parquet as pq

    split_entry = sources[comp.config]["splits"].get(side)
    path = build_dir / split_entry["path"] if split_entry else None
    if path is not None:
        # ids only for a draw (count, fraction); read_table would cost +0.2 s of imports
        drawn = comp.upsample is None and not comp.all
        t = pq.ParquetFile(path).read(columns=["id", "label"] if drawn else ["label"])
        classes = t.column("label").combine_chunks().dictionary_encode(null_encoding="encode")
        names, codes = classes.dictionary.to_pylist(), classes.indices.to_numpy()
    else:
        t, names, codes = None, [], np.array([], np.int32)
    labels = np.array(names, object)[codes]
    n = len(codes)
    where = f"{recipe_path}: components.{index}"
    if comp.upsample is not None:
        copies = np.array([comp.factor(lab) for lab in names], np.int32)[codes]
    elif comp.all:
        copies = np.ones(n, np.int32)
    else:
        k = comp.count if comp.count is not None else _rounded(comp.fraction, n)
        if k > n:
            raise MixtureError(
                f"{where}.count: asks for {k} {side} rows of {comp.config!r}, which has {n}; "
                "lower the count, take a fraction or all: true, or upsample classes"
            )
        seed = recipe.seed if comp.seed is None else comp.seed
        copies = np.zeros(n, np.int32)
        ids = t.column("id").to_pylist() if t is not None else []
        copies[np.argsort(seeded_ranks(seed, ids), kind="stable")[:k]] = 1
    reasoning = has_reasoning(columns[comp.config]) and (
        comp.reasoning if comp.reasoning is not None else recipe.conversation.reasoning
    )
    fmt = recipe.conversation
    system_name = fmt.reasoning_system_prompt if reasoning else fmt.system_prompt
    system = prompts[system_name] if system_name else None
    return ComponentPlan(index, comp, side, path, copies, labels, system, system_name, reasoning)


def _rounded(fraction: float, n: int) -> int:
    """`fraction` of `n` rows, to the nearest row (halves up)."""
    return int(fraction * n + 0.5)


def _side_report(plans: list[ComponentPlan]) -> dict[str, Any]:
    comps, before, after = [], {}, {}
    for p in plans:
        classes = p.class_counts()
        c = p.component
        taken = sum(v["taken"] for v in classes.values())
        if c.count is not None:
            asked = c.count
        elif c.fraction is not None:
            asked = _rounded(c.fraction, len(p.copies))
        else:
            asked = sum(v["asked"] for v in classes.values())
        comps.append(
            {
                "index": p.index,
                "config": c.config,
                "amount": c.amount,
                "system_prompt": p.system_name,
                "reasoning": p.reasoning,
                "classes": classes,
                "source": len(p.copies),
                "taken": taken,
                "asked": asked,
                "written": int(p.copies.sum()),
            }
        )
        for lab, v in classes.items():
            before[lab] = before.get(lab, 0) + v["taken"]
            after[lab] = after.get(lab, 0) + v["written"]
    return {
        "components": comps,
        "written": sum(c["written"] for c in comps),
        "before": dict(sorted(before.items())),
        "after": dict(sorted(after.items())),
    }


def _drawn_plot(stage: Stage) -> tuple[str | None, str | None]:
    """(key, sha256) of the plot the last run of `stage` drew, from its stamp; Nones if
    there is none."""
    try:
        stamp = read_json(stage.dir / STAMP)
        summary = stamp.get("summary", {})
        return summary.get("plot_key"), stamp.get("outputs", {}).get(summary.get("plot"))
    except (OSError, ValueError, AttributeError):
        return None, None


def _plot(
    build_dir: Path, name: str, report: dict[str, Any], drawn: tuple[str | None, str | None]
) -> tuple[str | None, str | None, list[str]]:
    """Draw the class plot unless the last run drew it from the same inputs (the counts
    it shows, its title, the plotting code and matplotlib's version) and the file is
    still those bytes. Returns its path (None: no matplotlib), its key and notes."""
    from importlib.metadata import PackageNotFoundError, version

    from vlm_autodrive.builders.mix import report as report_module

    rel, title = f"{REPORT_DIR}/{name}/{PLOT_NAME}", f"{MIX_PREFIX}{name}"
    try:
        matplotlib_version = version("matplotlib")
    except PackageNotFoundError:
        return None, None, ["matplotlib is not installed: no plot (pip install matplotlib)"]
    counts = {s: [v["before"], v["after"]] for s, v in report["sides"].items()}
    code = Path(report_module.__file__).read_bytes()
    key = content_key([counts, title, hashlib.sha256(code).hexdigest(), matplotlib_version])
    path = build_dir / rel
    if (
        drawn[0] == key
        and drawn[1] is not None
        and path.is_file()
        and file_sha256(path) == drawn[1]
    ):
        return rel, key, []
    try:
        report_module.plot_distribution(report, path, title=title)
    except ImportError:
        return None, None, ["matplotlib is not installed: no plot (pip install matplotlib)"]
    return rel, key, []
