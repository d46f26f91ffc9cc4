"""A rebuild with nothing changed, of the rule splits, the dataset folder and a mixture.

A 10,000-video synthetic build (the tables of bench_rule_splits.py: ~53k clips, no video
files) gets its rule splits (`mcq`, `caption_metadata`, the assignment, the card), the
model-made configs as synthetic rows at the paper's sizes (bench_mix.py's, standing in
for what the model splits write; their own no-change run is bench_rebuild.py's), and the
paper's Table 1 mixture (`recipes/mixtures/paper_table1.yaml`, ~350k rows); then the
rule splits and the mixture run again with nothing changed, in a fresh process as
`autodrive build` / `autodrive mix` would run them. Printed: seconds of each stage's
first run and of its no-change run (inside the process), the process's own time, and
whether the no-change run left every file of the folder as it was (bytes and
modification times). Target (issue 12, item 6): the no-change rebuild of the splits and
the mixture in <= 2 s in all, model splits included; these two stages well under 1 s.

`nochange_seconds(build, mixture)` is the measurement alone, for bench_rebuild.py.

    python benchmarks/bench_nochange.py [--videos 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = {"manifest": "synthetic"}


def _rule_config():
    from vlm_autodrive.builders.rules.stage import RuleSplitsConfig

    # take_available: a small build holds too few Collision clips for 66 in test.
    return RuleSplitsConfig(on_short="take_available")


def first_build(build: Path, mixture: Path) -> dict[str, float]:
    """The rule splits and the mixture from the build's tables: seconds of each."""
    from vlm_autodrive.builders.core.taxonomy import load_taxonomy
    from vlm_autodrive.builders.mix.stage import mix
    from vlm_autodrive.builders.rules.stage import build_rule_splits

    t0 = time.perf_counter()
    build_rule_splits(build, _rule_config(), load_taxonomy(), RECIPE)
    t1 = time.perf_counter()
    mix(mixture, build)
    return {"rules_s": t1 - t0, "mix_s": time.perf_counter() - t1}


def nochange_seconds(build: Path, mixture: Path) -> dict[str, float]:
    """Run the rule splits and the mixture again on an unchanged build: seconds of each
    (they must both say they skipped; AssertionError otherwise)."""
    from vlm_autodrive.builders.core.taxonomy import load_taxonomy
    from vlm_autodrive.builders.mix.stage import mix
    from vlm_autodrive.builders.rules.stage import build_rule_splits

    t0 = time.perf_counter()
    rules = build_rule_splits(build, _rule_config(), load_taxonomy(), RECIPE)
    t1 = time.perf_counter()
    mixed = mix(mixture, build)
    t2 = time.perf_counter()
    assert rules.skipped and mixed.skipped, (rules.skipped, mixed.skipped)
    return {"rules_s": t1 - t0, "mix_s": t2 - t1, "total_s": t2 - t0}


def snapshot(build: Path) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of every file of the folder but the stage inputs."""
    return {
        p.relative_to(build).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(build.rglob("*"))
        if p.is_file() and p.parts[len(build.parts)] not in ("ingest", "chunk")
    }


def child(mode: str, build: Path, mixture: Path) -> None:
    t0 = time.perf_counter()
    res = first_build(build, mixture) if mode == "first" else nochange_seconds(build, mixture)
    print(json.dumps({**res, "in_process_s": time.perf_counter() - t0}))


def run_child(mode: str, build: Path, mixture: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    cmd = [sys.executable, __file__, "--child", mode, str(build), str(mixture)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the {mode} run failed:\n{out.stderr}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return {**res, "process_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--videos", type=int, default=10_000)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    from bench_mix import bench_sizes

    from vlm_autodrive.builders.synthetic.configs import write_synthetic_configs
    from vlm_autodrive.builders.synthetic.tables import write_synthetic_tables
    from vlm_autodrive.resources import bundled

    mixture = bundled("recipes", "mixtures/paper_table1.yaml")
    with tempfile.TemporaryDirectory(prefix="bench-nochange-") as tmp:
        build = Path(tmp) / "build"
        videos, clips = write_synthetic_tables(build, args.videos, seed=0)
        model_made = ("caption_vlm", "vqa", "reasoning_mcq", "reasoning_vqa")
        sizes = {k: v for k, v in bench_sizes(350_000).items() if k in model_made}
        write_synthetic_configs(build, sizes, test_per_class=0)
        first = run_child("first", build, mixture)
        before = snapshot(build)
        again = run_child("nochange", build, mixture)
        untouched = snapshot(build) == before
        mib = sum(p.stat().st_size for p in (build / "data").rglob("*.parquet")) / 2**20
    print(f"{videos:,} videos, {clips:,} clips, {mib:.0f} MiB of Parquet in data/ (every config)")
    print(f"{'run':<10} {'rule splits s':>13} {'mixture s':>9} {'process s':>9}")
    for name, r in (("first", first), ("no change", again)):
        print(f"{name:<10} {r['rules_s']:>13.3f} {r['mix_s']:>9.3f} {r['process_s']:>9.2f}")
    print(
        f"no-change rebuild: {again['total_s']:.3f} s in the stages "
        f"({again['total_s'] / (first['rules_s'] + first['mix_s']):.3f} of the first build); "
        f"every file left as it was (bytes, modification times): {'yes' if untouched else 'NO'}"
    )
    ok = again["total_s"] < 1.0 and untouched
    print("target (< 1 s for these stages, nothing rewritten): " + ("met" if ok else "NOT met"))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
