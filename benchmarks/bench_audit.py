"""`autodrive audit` at scale, and the perceptual hash against a full decode.

1. The audit (no model baseline) of a 10,000-video synthetic build made without videos,
   as benchmarks/bench_rebuild.py's tables are: `write_synthetic_tables` (ingest and chunk
   tables, ~53,000 clips), the real rule splits (mcq, caption_metadata) and the model
   configs at the paper's sizes (`write_synthetic_configs`: ~132,000 VQA rows, reasoning
   MCQ and VQA, VLM captions) with `--test-per-class` test rows per class. No source or
   clip file exists, so the duplicate part hashes nothing (counted as missing): it is
   timed in part 2. Median of `--runs` audits, plots included.
2. The perceptual hash (8 frames a video, seek + decode to each) in videos per second
   against decoding every frame of the same videos: the synthetic sample (`--videos`
   videos of `--duration` s at 320x180, 30 fps, a keyframe a second), median of `--runs`.
   Then comparing 10,000 signatures pairwise (every pair: the near-duplicate search of a
   10,000-video build), and the threshold's error rates on the sample (calibrate.py).

3. With `--smollm2 MODEL_DIR`: the text-only model baseline's requests per second against
   the generation benchmark's, on one vLLM CPU engine in one process
   (`bench_model_splits.py --smollm2`, run with `.venv-vllm/bin/python`, which prints
   both: the `vqa` stage, then the baseline on the same build's MCQ rows).

    python benchmarks/bench_audit.py [--build-videos 10000] [--videos 12] [--runs 3]
        [--smollm2 build/models/smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODEL_CONFIGS = ("caption_vlm", "vqa", "reasoning_mcq", "reasoning_vqa")


def make_build(build: Path, videos: int, test_per_class: int) -> dict:
    from vlm_autodrive.builders.core.taxonomy import load_taxonomy
    from vlm_autodrive.builders.rules.config import RuleSplitsConfig
    from vlm_autodrive.builders.rules.stage import build_rule_splits
    from vlm_autodrive.builders.synthetic.configs import PAPER_SIZES, write_synthetic_configs
    from vlm_autodrive.builders.synthetic.tables import write_synthetic_tables

    t0 = time.perf_counter()
    write_synthetic_tables(build, videos, seed=0)
    build_rule_splits(build, RuleSplitsConfig(on_short="take_available"), load_taxonomy(), {})
    sizes = {k: PAPER_SIZES[k] for k in MODEL_CONFIGS}
    write_synthetic_configs(build, sizes, test_per_class=test_per_class)
    import json

    prov = json.loads((build / "provenance.json").read_text())
    rows = sum(s["rows"] for c in prov["configs"].values() for s in c["splits"].values())
    return {"seconds": time.perf_counter() - t0, "rows": rows, "configs": len(prov["configs"])}


def bench_audit(build: Path, runs: int) -> tuple[list[float], list[float], object]:
    """Wall and CPU seconds of each audit (CPU too: other jobs share the cores here)."""
    from vlm_autodrive.builders.audit.stage import run_audit

    times, cpu, report = [], [], None
    for _ in range(runs):
        (build / "audit" / "stamp.json").unlink(missing_ok=True)  # a full audit each time
        c0, t0 = time.process_time(), time.perf_counter()
        report = run_audit(build)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return times, cpu, report


def bench_unchanged(build: Path) -> float:
    """Seconds of an audit with nothing changed since the last (the stamp matches)."""
    from vlm_autodrive.builders.audit.stage import run_audit

    t0 = time.perf_counter()
    run_audit(build)
    return time.perf_counter() - t0


def bench_hash(videos: list[Path], runs: int) -> dict:
    from vlm_autodrive.builders.audit.phash import decode_all_frames, hash_video

    hashing, decoding, frames = [], [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        for v in videos:
            assert not hash_video(v).error
        hashing.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        frames = sum(decode_all_frames(v) for v in videos)
        decoding.append(time.perf_counter() - t0)
    return {"hash_s": statistics.median(hashing), "decode_s": statistics.median(decoding),
            "frames": frames}  # fmt: skip


def bench_pairs(n: int, runs: int) -> float:
    import numpy as np

    from vlm_autodrive.builders.audit.phash import FRAMES, VideoHash, near_pairs

    rng = np.random.default_rng(0)
    sigs = rng.normal(size=(n, FRAMES, 63)).astype(np.float32)
    sigs /= np.linalg.norm(sigs, axis=2, keepdims=True)
    hashes = [VideoHash(str(i), "", s.ravel()) for i, s in enumerate(sigs)]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        near_pairs(hashes)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-videos", type=int, default=10_000)
    ap.add_argument("--test-per-class", type=int, default=400)
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--pairs", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--smollm2", type=Path, help="also the model baseline's rate on vLLM")
    args = ap.parse_args()
    from vlm_autodrive.builders.audit.calibrate import calibrate
    from vlm_autodrive.builders.synthetic.sample import generate_sample

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        made = make_build(root / "build", args.build_videos, args.test_per_class)
        print(
            f"synthetic build: {args.build_videos} videos, {made['configs']} configs, "
            f"{made['rows']} rows (made in {made['seconds']:.1f} s, not timed below)"
        )
        times, cpu, report = bench_audit(root / "build", args.runs)
        med = statistics.median(times)
        print(
            f"audit (no model baseline, plots included): median {med:.2f} s of {args.runs} "
            f"({', '.join(f'{t:.2f}' for t in times)}), CPU {statistics.median(cpu):.2f} s; "
            f"{made['rows'] / med:,.0f} rows/s"
        )
        print("\n".join("  " + line for line in report.summary().splitlines()))
        print(f"audit again, nothing changed: {bench_unchanged(root / 'build'):.2f} s")

        generate_sample(root / "sample", args.videos, seed=0, duration=args.duration)
        videos = sorted((root / "sample" / "videos").glob("*.mp4"))
        h = bench_hash(videos, args.runs)
        n = len(videos)
        print(
            f"perceptual hash: {n / h['hash_s']:.1f} videos/s ({h['hash_s']:.2f} s for {n} "
            f"videos of {args.duration:g} s); full decode: {n / h['decode_s']:.1f} videos/s "
            f"({h['decode_s']:.2f} s, {h['frames']} frames); hash / decode speed "
            f"{h['decode_s'] / h['hash_s']:.1f}x (median of {args.runs})"
        )
        pairs = bench_pairs(args.pairs, args.runs)
        print(
            f"near-duplicate search over {args.pairs:,} signatures (every pair): "
            f"{pairs:.2f} s (median of {args.runs})"
        )
        print("calibration: " + calibrate(videos, root / "copies").format())
    if args.smollm2:
        import subprocess

        vllm_python = Path(__file__).resolve().parents[1] / ".venv-vllm" / "bin" / "python"
        script = Path(__file__).with_name("bench_model_splits.py")
        cmd = [str(vllm_python), str(script), "--smollm2", str(args.smollm2)]
        print("the model baseline against generation (SmolLM2-135M, vLLM CPU):", flush=True)
        subprocess.run([*cmd, "--requests", "32", "--max-tokens", "128"], check=True)


if __name__ == "__main__":
    main()
