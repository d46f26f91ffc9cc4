"""Model splits: pipeline overhead with an instant backend, and a fully cached rebuild.

A synthetic build of N source videos (default 10,000: ~53,000 clips, no video files) gets
its rule splits, then every model split (caption_vlm, vqa, reasoning_mcq, reasoning_vqa)
is generated with `ScriptedBackend`, which answers instantly: what remains is the
pipeline's own work (render, key, cache lookup and write, parse, validate, write). Runs
in a child process pinned to one core. Printed:

- cold run: requests per second through the pipeline (target >= 2,000/s on one core),
  against the scripted backend alone answering the same requests (the baseline);
- fully cached rebuild of all model splits: seconds (target <= 60 s), against the cold run.

    python benchmarks/bench_model_splits.py [--videos 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The scripted backend is a test double: it lives under tests/, importable from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def child(build: Path) -> None:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    from tests.doubles.scripted import ScriptedBackend
    from vlm_autodrive.builders.core.taxonomy import load_taxonomy
    from vlm_autodrive.builders.generate.config import GenerateConfig
    from vlm_autodrive.builders.generate.stage import run_model_splits

    taxonomy = load_taxonomy()
    gen = GenerateConfig.model_validate(
        {
            "models": {"m": {"model": "scripted", "revision": "1"}},
            "splits": {
                name: {"model": "m"}
                for name in ("caption_vlm", "vqa", "reasoning_mcq", "reasoning_vqa")
            },
        }
    )
    seen: list = []  # every request the pipeline sent, for the baseline below

    class Recording(ScriptedBackend):
        def generate(self, requests):
            requests = list(requests)
            seen.extend(requests)
            return super().generate(requests)

    def opener(cfg, stack):
        return Recording()

    def timed():
        t = time.perf_counter()
        reports = run_model_splits(build, gen, taxonomy, open_backend=opener, progress=False)
        return time.perf_counter() - t, reports

    cold_s, reports = timed()
    requests = sum(r.requests for r in reports)
    # Baseline: the instant backend alone, answering the very requests the pipeline sent.
    t = time.perf_counter()
    for _ in ScriptedBackend().generate(seen):
        pass
    backend_s = time.perf_counter() - t
    warm_s, warm = timed()
    assert sum(r.sent for r in warm) == 0, "the rebuild sent requests"
    print(
        json.dumps(
            {
                "requests": requests,
                "rows": sum(r.rows for r in reports),
                "samples": sum(r.samples for r in reports),
                "cold_s": cold_s,
                "backend_only_s": backend_s,
                "cached_s": warm_s,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "per_split": {r.name: [r.clips, r.requests, r.rows] for r in reports},
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=10_000)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    from vlm_autodrive.builders.core.taxonomy import load_taxonomy
    from vlm_autodrive.builders.rules.stage import RuleSplitsConfig, build_rule_splits
    from vlm_autodrive.builders.synthetic.tables import write_synthetic_tables

    with tempfile.TemporaryDirectory(prefix="bench-model-splits-") as tmp:
        build = Path(tmp)
        write_synthetic_tables(build, args.videos, seed=0)
        build_rule_splits(
            build,
            RuleSplitsConfig(on_short="take_available"),
            load_taxonomy(),
            {"manifest": "synthetic"},
        )
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(build)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    r = json.loads(out.strip().splitlines()[-1])
    rps = r["requests"] / r["cold_s"]
    print(f"{args.videos} synthetic videos; per split [clips, requests, rows]: {r['per_split']}")
    print(
        f"cold run, one core: {r['requests']} requests, {r['samples']} samples, "
        f"{r['rows']} rows in {r['cold_s']:.1f} s = {rps:,.0f} requests/s "
        f"(target >= 2,000/s: {'met' if rps >= 2000 else 'MISSED'})"
    )
    print(
        f"  baseline, the instant backend alone: {r['backend_only_s']:.2f} s; pipeline / "
        f"backend-only time = {r['cold_s'] / r['backend_only_s']:.1f}x"
    )
    print(f"  350,000 requests at this rate: {350_000 / rps / 60:.1f} min of CPU")
    print(
        f"fully cached rebuild: {r['cached_s']:.1f} s (target <= 60 s: "
        f"{'met' if r['cached_s'] <= 60 else 'MISSED'}); cold / cached = "
        f"{r['cold_s'] / r['cached_s']:.1f}x; peak RSS {r['peak_rss_mib']:.0f} MiB"
    )


if __name__ == "__main__":
    main()
