"""Rule splits throughput and memory: 1,000 and 10,000 synthetic source videos.

For each size, synthetic `ingest/videos.parquet` and `chunk/clips.parquet` (~5.3 clips a
video, the paper's class mix, no video files) are written to a temporary build folder;
then a fresh Python process builds the rule splits (`mcq` and `caption_metadata`, the
assignment, card and provenance) from them. Each run is its own process, so its peak
RSS (the child's own `ru_maxrss`) is its alone. Printed per size: seconds inside the
stage, seconds for the whole process (interpreter start and imports included), rows
written per second, peak RSS; then how time per clip grows from the small to the large
run (1.0 = linear). Targets (issue 3): 10k videos in 20 s or less on 2 cores, RSS < 1 GB.

    python benchmarks/bench_rule_splits.py [--sizes 1000 10000] [--profile]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(build: Path, profile: bool) -> None:
    """Run the stage once in this process and print its figures as one JSON line."""
    t0 = time.perf_counter()
    from vlm_autodrive.builders.core.taxonomy import load_taxonomy
    from vlm_autodrive.builders.rules.stage import RuleSplitsConfig, build_rule_splits

    taxonomy = load_taxonomy()
    t1 = time.perf_counter()
    # take_available: 1,000 videos hold ~100 Collision clips, too few for 66 in test.
    config = RuleSplitsConfig(on_short="take_available")
    run = lambda: build_rule_splits(  # noqa: E731
        build, config, taxonomy, {"manifest": "synthetic"}, force=True
    )
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        summary = prof.runcall(run)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    else:
        summary = run()
    t2 = time.perf_counter()
    rows = sum(sum(c.values()) for splits in summary.configs.values() for c in splits.values())
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "clips": summary.clips,
                "rows": rows,
                "imports_s": t1 - t0,
                "stage_s": t2 - t1,
                "peak_rss_mib": peak_kib / 1024,
            }
        )
    )


def measure(videos: int, profile: bool) -> dict:
    from vlm_autodrive.builders.synthetic.tables import write_synthetic_tables

    with tempfile.TemporaryDirectory(prefix="bench-rule-splits-") as tmp:
        build = Path(tmp) / "build"
        t0 = time.perf_counter()
        n_videos, _ = write_synthetic_tables(build, videos, seed=0)
        setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        cmd = [sys.executable, __file__, "--child", str(build)] + ["--profile"] * profile
        out = subprocess.run(cmd, capture_output=not profile, text=True)
        wall = time.perf_counter() - t0
        if out.returncode:
            raise SystemExit(f"the measured run failed:\n{out.stderr}")
        if profile:
            raise SystemExit(0)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        size = sum(p.stat().st_size for p in (build / "data").rglob("*.parquet"))
    return {
        "videos": n_videos,
        "setup_s": setup,
        "process_s": wall,
        "data_mib": size / 2**20,
        **res,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--profile", action="store_true", help="cProfile the largest size only")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.profile)
        return
    if args.profile:
        measure(max(args.sizes), profile=True)
    results = [measure(n, profile=False) for n in args.sizes]
    print(
        f"{'videos':>7} {'clips':>7} {'rows':>7} {'stage s':>8} {'process s':>9} "
        f"{'rows/s':>8} {'peak RSS MiB':>12} {'data MiB':>8}"
    )
    for r in results:
        print(
            f"{r['videos']:>7} {r['clips']:>7} {r['rows']:>7} {r['stage_s']:>8.2f} "
            f"{r['process_s']:>9.2f} {r['rows'] / r['stage_s']:>8.0f} "
            f"{r['peak_rss_mib']:>12.0f} {r['data_mib']:>8.1f}"
        )
    if len(results) >= 2:
        small, large = results[0], results[-1]
        per_small = small["stage_s"] / small["clips"]
        per_large = large["stage_s"] / large["clips"]
        print(
            f"growth {small['videos']} -> {large['videos']} videos: clips x"
            f"{large['clips'] / small['clips']:.1f}, stage time x"
            f"{large['stage_s'] / small['stage_s']:.1f}, time per clip x{per_large / per_small:.2f}"
            " (1.00 = linear)"
        )
    big = results[-1]
    ok = big["process_s"] <= 20 and big["peak_rss_mib"] < 1024
    print(
        f"target ({big['videos']} videos: <= 20 s for the whole process, peak RSS < 1 GiB): "
        + ("met" if ok else "NOT met")
    )


if __name__ == "__main__":
    main()
