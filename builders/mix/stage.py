"""The mix stage: a mixture recipe + a build folder -> the config `mix-<name>` of the dataset.

In: `recipes/mixtures/<name>.yaml` (see builders/mix/recipe.py) and a build folder whose
configs it names. Out, in the build folder:

- `data/mix-<name>/<side>-<hash>.parquet` (named by content): one row per drawn row and copy, with
  `id` (hash of the source id and the copy index: stable), `source_id`, `source_config`,
  `copy` (0 the row itself, 1.. its upsampled copies), `clip_id`, `video_id`, `label`,
  `split`, `video`, `content_hash` (changes with the source text or the format) and
  `messages` (builders/mix/conversations.py);
- `mix/<name>/class_distribution.png`: classes before and after upsampling;
- provenance.json (`stages.mix-<name>`: recipe, inputs, system prompt hashes, counts) and
  the card, which declares the config and shows the counts table and the plot.

Streaming: a first pass reads only `id` and `label` of each source to decide how many
copies of each row go in (`ComponentPlan.copies`); a second pass reads the source in
record batches, repeats and converts them with Arrow kernels and appends them to a
ParquetWriter. No row ever becomes a Python dict, so memory stays flat in the row count.

Drawing `count`/`fraction` rows ranks rows by a hash of (seed, row id): the draw depends
on the seed and the ids only, not on row order, and a rebuild that adds or drops a few
rows keeps the rest of the draw (so the changelog of a mixture stays small).
Rows are written grouped by component, in source order; training shuffles them.
Re-running with the same recipe, sources and prompts does no work.

Over 400 lines on purpose: the two passes (plan every side, then stream rows) share
per-component state that splitting would pass around in long signatures.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vlm_autodrive import __version__
from vlm_autodrive.builders.core.files import read_json, text_sha256
from vlm_autodrive.builders.core.ranking import seeded_ranks
from vlm_autodrive.builders.core.stage import Stage, content_key
from vlm_autodrive.builders.dataset.folder import (
    DATA_DIR,
    PROVENANCE,
    register_config,
    store_data_file,
)
from vlm_autodrive.builders.dataset.rows import content_hash
from vlm_autodrive.builders.mix.conversations import (
    MESSAGES_TYPE,
    batch_messages,
    has_reasoning,
    load_system_prompt,
)
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
BATCH_ROWS = 8192
MIX_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source_id", pa.string()),
        ("source_config", pa.string()),
        ("copy", pa.int32()),
        ("clip_id", pa.string()),
        ("video_id", pa.string()),
        ("label", pa.string()),
        ("split", pa.string()),
        ("video", pa.string()),
        ("content_hash", pa.string()),
        ("messages", MESSAGES_TYPE),
    ]
)


@dataclass
class ComponentPlan:
    """What one component takes from one side: copies per source row, in file order."""

    index: int
    component: Component
    side: str
    path: Path | None  # None: the config has no rows on this side
    copies: np.ndarray  # int32, one per source row
    labels: np.ndarray  # class per source row (object array of str)
    system: str | None
    system_name: str | None
    reasoning: bool

    def class_counts(self) -> dict[str, dict[str, Any]]:
        """class -> source, taken (rows drawn), factor, asked, written."""
        out = {}
        for lab in sorted(set(self.labels.tolist())):
            mask = self.labels == lab
            c = self.component
            out[lab] = {
                "source": int(mask.sum()),
                "taken": int((self.copies[mask] > 0).sum()),
                "factor": c.factor(lab),
                "asked": int(mask.sum()) * c.factor(lab) if c.count is None and c.fraction is None
                else None,
                "written": int(self.copies[mask].sum()),
            }  # fmt: skip
        return out


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
        raise FileNotFoundError(f"{prov_path} not found: build the splits first (autodrive build)")
    prov = read_json(prov_path)
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
        c.split: {s: v["sha256"] for s, v in sources[c.split]["splits"].items()}
        for c in recipe.components
    }
    recipe_dict = recipe.model_dump(mode="json")
    key = content_key(
        {
            "toolkit": __version__,
            "recipe": recipe_dict,
            "name": name,
            "inputs": inputs,
            "prompts": {n: text_sha256(t) for n, t in prompts.items()},
        }
    )
    stage = Stage(build_dir, f"{REPORT_DIR}/{name}")
    if not force and (done := stage.finished(key)) is not None:
        return MixResult(name, config, str(build_dir), done["report"], done.get("plot"), True)
    stage.invalidate()

    report: dict[str, Any] = {"sides": {}}
    # Every side is planned (and every count checked) before anything is written.
    planned = {
        side: [
            _plan(i, c, side, recipe, recipe_path, build_dir, sources, columns, prompts)
            for i, c in enumerate(recipe.components)
        ]
        for side in recipe.splits
    }
    files: dict[str, str] = {}  # side -> data file; a side without rows has none
    for side, plans in planned.items():
        rel = _write_side(build_dir, config, side, plans)
        if rel is not None:
            files[side] = rel
        report["sides"][side] = _side_report(plans)
    if not files:
        raise MixtureError(f"{recipe_path}: the mixture has no rows on {recipe.splits}")

    plot_rel, notes = _plot(build_dir, name, report)
    described = "; ".join(f"{c.split} ({c.amount})" for c in recipe.components)
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
        {"report": report, "plot": plot_rel},
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
    """Copies per source row of one component on one side (first pass: id and label)."""
    import pyarrow.parquet as pq

    split_entry = sources[comp.split]["splits"].get(side)
    path = build_dir / split_entry["path"] if split_entry else None
    if path is not None:
        t = pq.read_table(path, columns=["id", "label"])
        classes = t.column("label").combine_chunks().dictionary_encode()
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
                f"{where}.count: asks for {k} {side} rows of {comp.split!r}, which has {n}; "
                "lower the count, take a fraction or all: true, or upsample classes"
            )
        seed = recipe.seed if comp.seed is None else comp.seed
        copies = np.zeros(n, np.int32)
        ids = t.column("id").to_pylist() if t is not None else []
        copies[np.argsort(seeded_ranks(seed, ids), kind="stable")[:k]] = 1
    reasoning = has_reasoning(columns[comp.split]) and (
        comp.reasoning if comp.reasoning is not None else recipe.conversation.reasoning
    )
    fmt = recipe.conversation
    system_name = fmt.reasoning_system_prompt if reasoning else fmt.system_prompt
    system = prompts[system_name] if system_name else None
    return ComponentPlan(index, comp, side, path, copies, labels, system, system_name, reasoning)


def _rounded(fraction: float, n: int) -> int:
    """`fraction` of `n` rows, to the nearest row (halves up)."""
    return int(fraction * n + 0.5)


def _write_side(build_dir: Path, config: str, side: str, plans: list[ComponentPlan]) -> str | None:
    """Second pass: stream every component's rows into one Parquet file, stored under its
    content name; its path relative to the build folder, or None when no row went in."""
    import pyarrow.parquet as pq

    tmp = build_dir / DATA_DIR / config / f".{side}.{os.getpid()}.parquet.tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    try:
        with pq.ParquetWriter(tmp, MIX_SCHEMA) as writer:
            for plan in plans:
                for batch in _component_batches(plan, config):
                    writer.write_batch(batch)
                    rows += batch.num_rows
        # `datasets` cannot read a Parquet file without rows: such a side is left out.
        return store_data_file(build_dir, config, side, tmp) if rows else None
    finally:
        tmp.unlink(missing_ok=True)


def _component_batches(plan: ComponentPlan, config: str):
    """The output record batches of one component, one per source record batch that has
    rows going in (so a file's row groups follow the source's batches)."""
    import pyarrow.parquet as pq

    if plan.path is None or not plan.copies.any():
        return
    pf = pq.ParquetFile(plan.path)
    wanted = ["id", "clip_id", "video_id", "label", "video", "content_hash", "question"]
    wanted += ["answer", "reasoning", "target"]
    cols = [c for c in wanted if c in pf.schema_arrow.names]
    fmt_key = f"{plan.system_name}:{text_sha256(plan.system or '')}:{plan.reasoning}"
    source_config = pa.scalar(plan.component.split, pa.string())
    side = pa.scalar(plan.side, pa.string())
    offset = 0
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=cols):
        m = plan.copies[offset : offset + batch.num_rows]
        offset += batch.num_rows
        total = int(m.sum())
        if total == 0:
            continue
        keep = np.flatnonzero(m)  # source rows that go in
        reps = m[keep]
        rows = np.repeat(keep, reps)  # the source row of each output row
        copy = np.arange(total, dtype=np.int32) - np.repeat(np.cumsum(reps) - reps, reps)
        # Hashes per source row that goes in, then one per output row.
        hashed = ["content_hash"] if "content_hash" in cols else ["question", "answer"]
        kept = batch.select(["id", *hashed]).take(pa.array(keep))
        src_hashes = (
            kept.column("content_hash").to_pylist()
            if "content_hash" in cols
            else [content_hash(q, a) for q, a in zip(kept.column("question").to_pylist(),
                                                      kept.column("answer").to_pylist())]
        )  # fmt: skip
        per_kept = pa.array(np.repeat(np.arange(len(keep)), reps))
        out = batch.select(["id", "clip_id", "video_id", "label", "video"]).take(pa.array(rows))
        source_ids = kept.column("id").to_pylist()
        yield pa.record_batch(
            [
                pa.array(_row_ids(config, source_ids, reps)),
                out.column("id"),
                pa.repeat(source_config, total),
                pa.array(copy, pa.int32()),
                out.column("clip_id"),
                out.column("video_id"),
                out.column("label"),
                pa.repeat(side, total),
                out.column("video"),
                pa.array(_content_hashes(src_hashes, fmt_key)).take(per_kept),
                batch_messages(batch, plan.system, plan.reasoning, rows),
            ],
            schema=MIX_SCHEMA,
        )


def _row_ids(config: str, source_ids: list[str], copies: np.ndarray) -> list[str]:
    """`rows.row_id(config, source_id, copy)` for copies 0..n-1 of each source row (n from
    `copies`), in that order: the same bytes hashed, inlined (the generic join costs more
    than the hash at 350k rows)."""
    prefix = hashlib.blake2b(f"{config}\x1f".encode(), digest_size=8)
    out = []
    for s, n in zip(source_ids, copies.tolist()):
        for c in range(n):
            h = prefix.copy()
            h.update(f"{s}\x1f{c}".encode())
            out.append(h.hexdigest())
    return out


def _content_hashes(source_hashes: list[str], fmt_key: str) -> list[str]:
    """`rows.content_hash(source_hash, fmt_key)` for many rows, inlined likewise: a row's
    content is its source's content in a conversation format."""
    b2 = hashlib.blake2b
    tail = f"\x1f\x1e\x1f{fmt_key}\x1f\x1e"
    return [b2(f"{h}{tail}".encode(), digest_size=8).hexdigest() for h in source_hashes]


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
                "config": c.split,
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


def _plot(build_dir: Path, name: str, report: dict[str, Any]) -> tuple[str | None, list[str]]:
    from vlm_autodrive.builders.mix.report import plot_distribution

    rel = f"{REPORT_DIR}/{name}/{PLOT_NAME}"
    try:
        plot_distribution(report, build_dir / rel, title=f"{MIX_PREFIX}{name}")
    except ImportError:
        return None, ["matplotlib is not installed: no plot (pip install matplotlib)"]
    return rel, []
