"""Rebuilding after an edit: seconds, and the dry run's prediction against what was sent.

The synthetic build of bench_model_splits.py (N source videos, default 10,000: ~53,000
clips, every model split through the instant `ScriptedBackend`), with one small file per
clip so that `caption_vlm` keys on clip bytes as on a real build, and the quick-start
mixture. Then, each from a fresh copy of that build, in a child process on one core,
median of `--runs`:

- no change: the rule splits, the model splits and the mixture again;
- a one-video manifest edit: one Near-Collision video relabelled Collision, applied to
  the ingest and chunk tables as those stages write it (the synthetic build has no
  video files to ingest or cut: ingest and chunk are not timed);
- a caption-template edit touching one class: the Collision event sentence of
  `captions/event.jinja`, in a templates folder of the recipe;
- a parse-setting change: `max_output_chars` lowered for `vqa` (every one of its cached
  samples parsed again; the other splits keep theirs).

Before each rebuild the dry run plans it (the rule splits in memory, the model splits'
requests against the cache, `builders/generate/preview.py` and the stage's dry run, as
`autodrive build --dry-run` does) and its `to send` must equal what the rebuild then
sends. Baseline, in the same run: what a user without incremental rebuilds would run, a
full rebuild from scratch with the response cache kept warm (every output but the
ingest and chunk tables, the clips and the cache deleted first).

    python benchmarks/bench_rebuild.py [--videos 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

# The scripted backend is a test double: it lives under tests/, importable from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SPLITS = ("caption_vlm", "vqa", "reasoning_mcq", "reasoning_vqa")
KEEP = ("ingest", "chunk", "clips", "cache")  # what a from-scratch rebuild keeps
RECIPE = {"manifest": "synthetic"}
# The parse-setting edit: a `vqa` setting that every cached sample is parsed against.
PARSE_EDIT = {"vqa": {"max_output_chars": 60}}


def gen_config(edits: dict[str, dict] | None = None):
    """The model splits' settings; `edits`: config -> settings that differ."""
    from vlm_autodrive.builders.generate.config import GenerateConfig

    return GenerateConfig.model_validate(
        {
            "models": {"m": {"model": "scripted", "revision": "1"}},
            "configs": {name: {"model": "m", **(edits or {}).get(name, {})} for name in SPLITS},
        }
    )


def rules_config(templates: str | None):
    from vlm_autodrive.builders.rules.config import RuleSplitsConfig

    return RuleSplitsConfig(on_short="take_available", templates=templates)


def mixture() -> Path:
    from vlm_autodrive.resources import bundled

    return bundled("recipes") / "mixtures" / "quickstart.yaml"


def rebuild(build: Path, templates: str | None, edits: dict | None = None) -> dict:
    """The rule splits, the model splits and the mixture, as `autodrive build` and
    `autodrive mix` run them; seconds of each and the requests sent."""
    from tests.doubles.scripted import ScriptedBackend
    from vlm_autodrive.builders.core.taxonomy import load_taxonomy
    from vlm_autodrive.builders.generate.stage import run_model_splits
    from vlm_autodrive.builders.mix.stage import mix
    from vlm_autodrive.builders.rules.stage import build_rule_splits

    taxonomy = load_taxonomy()
    c0, t0 = time.process_time(), time.perf_counter()
    build_rule_splits(build, rules_config(templates), taxonomy, RECIPE)
    t1 = time.perf_counter()
    reports = run_model_splits(
        build,
        gen_config(edits),
        taxonomy,
        open_backend=lambda c, s: ScriptedBackend(),
        progress=False,
    )
    t2 = time.perf_counter()
    mix(mixture(), build)
    t3 = time.perf_counter()
    return {
        "rules_s": t1 - t0,
        "model_s": t2 - t1,
        "mix_s": t3 - t2,
        "total_s": t3 - t0,
        "total_cpu_s": time.process_time() - c0,
        "sent": sum(r.sent for r in reports),
    }


def dry_run(build: Path, templates: str | None, edits: dict | None = None) -> dict:
    """What `autodrive build --dry-run` does once ingest and chunk are planned."""
    from vlm_autodrive.builders.core.taxonomy import load_taxonomy
    from vlm_autodrive.builders.generate.preview import preview_rules
    from vlm_autodrive.builders.generate.stage import run_model_splits

    taxonomy = load_taxonomy()
    # The two recipe fields the rule splits read (the benchmark has no recipe file).
    recipe = SimpleNamespace(rules=rules_config(templates), model_dump=lambda mode: RECIPE)
    c0, t0 = time.process_time(), time.perf_counter()
    up = preview_rules(build, recipe, taxonomy)
    reports = run_model_splits(
        build, gen_config(edits), taxonomy, dry_run=True, progress=False, clips=up.clips
    )
    return {
        "dry_s": time.perf_counter() - t0,
        "dry_cpu_s": time.process_time() - c0,
        "predicted": sum(r.to_send for r in reports),
        "rule_rows_changed": sum(up.rule_changes.values()),
    }


def edit_one_video(build: Path) -> str:
    """Relabel one Near-Collision video Collision, in its ingest row and event clip, as
    ingest and chunk would write them after that manifest edit (the tests' helper)."""
    from tests.builders.small_builds import relabel_one_video

    return relabel_one_video(build)


def edit_template(root: Path) -> str:
    """A templates folder whose Collision event sentence says `hits`."""
    from vlm_autodrive.resources import bundled

    folder = root / "my_templates"
    if not folder.exists():
        shutil.copytree(bundled("templates"), folder)
        event = folder / "captions" / "event.jinja"
        text = event.read_text()
        old = '"the ego vehicle collides with " ~ whom'
        assert old in text, "captions/event.jinja changed: update the benchmark's edit"
        event.write_text(text.replace(old, '"the ego vehicle hits " ~ whom'))
    return str(folder)


def scrub(build: Path) -> None:
    """Everything but the ingest and chunk tables, the clips and the cache."""
    for p in build.iterdir():
        if p.name not in KEEP:
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def child(base: Path, work: Path, scenario: str) -> None:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    # Imports are not timed (a process start, the same for every side).
    import vlm_autodrive.builders.dataset.assign
    import vlm_autodrive.builders.generate.backends.factory
    import vlm_autodrive.builders.generate.preview
    import vlm_autodrive.builders.generate.stage
    import vlm_autodrive.builders.mix.stage
    import vlm_autodrive.builders.rules.stage  # noqa: F401

    with contextlib.suppress(ImportError):  # the mixture's plot (builders/mix/report.py)
        import matplotlib.backends.backend_agg
        import matplotlib.figure  # noqa: F401

    templates = None
    if scenario == "template":
        templates = edit_template(work.parent)
    if scenario == "manifest":
        edit_one_video(work)
    edits = PARSE_EDIT if scenario == "parse" else None
    if scenario == "scratch":
        scrub(work)
        out = rebuild(work, None)
    else:
        out = {**dry_run(work, templates, edits), **rebuild(work, templates, edits)}
    print(json.dumps(out))


def make_base(build: Path, videos: int) -> dict:
    """The synthetic build, cold, with a small distinct file per clip."""
    import pyarrow.parquet as pq

    from vlm_autodrive.builders.synthetic.tables import write_synthetic_tables

    write_synthetic_tables(build, videos, seed=0)
    for rel in pq.read_table(build / "chunk" / "clips.parquet", columns=["path"])["path"]:
        p = build / rel.as_py()
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rel.as_py().encode())  # distinct bytes: distinct content hashes
    t = time.perf_counter()
    first = rebuild(build, None)
    return {**first, "cold_s": time.perf_counter() - t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--child", nargs=3, metavar=("BASE", "WORK", "SCENARIO"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.child[2])
        return
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-rebuild-") as tmp:
        base = Path(tmp) / "base"
        cold = make_base(base, args.videos)
        print(
            f"{args.videos} synthetic videos: cold build (rule splits, model splits, mixture) "
            f"{cold['cold_s']:.1f} s, {cold['sent']} requests"
        )
        for scenario in ("scratch", "nochange", "manifest", "template", "parse"):
            for i in range(args.runs):
                work = Path(tmp) / f"{scenario}-{i}" / "build"
                shutil.copytree(base, work, copy_function=shutil.copy2)
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(base), str(work), scenario],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                results.setdefault(scenario, []).append(json.loads(out.strip().splitlines()[-1]))
                shutil.rmtree(work.parent)
    report(results, args.runs)


def report(results: dict[str, list[dict]], runs: int) -> None:
    def med(rows, k):
        return statistics.median(r[k] for r in rows)

    base = results["scratch"]
    scratch = med(base, "total_s")
    print(
        f"baseline, full rebuild from scratch with a warm response cache: {scratch:.2f} s "
        f"({med(base, 'total_cpu_s'):.2f} s CPU; rule splits {med(base, 'rules_s'):.2f}, "
        f"model splits {med(base, 'model_s'):.2f}, mixture {med(base, 'mix_s'):.2f}); "
        f"sent {base[0]['sent']}"
    )
    names = {
        "nochange": "no change",
        "manifest": "one-video manifest edit",
        "template": "caption-template edit, one class",
        "parse": "parse-setting change (vqa max_output_chars)",
    }
    for key, name in names.items():
        rows = results[key]
        pred = [r["predicted"] for r in rows]
        sent = [r["sent"] for r in rows]
        assert pred == sent, f"{name}: the dry run predicted {pred}, the rebuild sent {sent}"
        total = med(rows, "total_s")
        print(
            f"{name}: {total:.2f} s ({med(rows, 'total_cpu_s'):.2f} s CPU; rule splits "
            f"{med(rows, 'rules_s'):.2f}, model splits {med(rows, 'model_s'):.2f}, mixture "
            f"{med(rows, 'mix_s'):.2f}); dry run {med(rows, 'dry_s'):.2f} s "
            f"({med(rows, 'dry_cpu_s'):.2f} s CPU) predicted {pred[0]} requests, sent {sent[0]}; "
            f"rule rows changed {rows[0]['rule_rows_changed']}; "
            f"baseline / this = {scratch / total:.1f}x"
        )
    print(
        f"median of {runs} runs each, one core, each from a fresh copy of the build, "
        "imports not timed; targets (issue 22): no change <= 1 s, one-video edit and its dry "
        "run <= 5 s each, template edit <= half the full rebuild, parse-setting change <= "
        "the full rebuild"
    )


if __name__ == "__main__":
    main()
