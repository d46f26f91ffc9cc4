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

With `--smollm2 MODEL_DIR` (run with `.venv-vllm/bin/python`: it needs vLLM) it measures
the stage on a real engine instead: the `vqa` split (JSON-schema constrained) of a small
synthetic build on SmolLM2-135M-Instruct in vLLM's CPU build, in process. Printed:
requests/s and tokens/s of the whole stage (render, key, cache, backend, parse, write),
against vLLM alone on the very same requests through its offline API (`LLM.chat` with
the same sampling parameters and constraints), and their ratio (target >= 0.95); then
the audit's text-only model baseline (builders/audit/model.py) on the build's MCQ rows,
its requests/s against the stage's (issue 25). One engine serves all three runs, prefix
caching off, after a warm-up.

    .venv-vllm/bin/python benchmarks/bench_model_splits.py --smollm2 \
        build/models/smollm2-135m-instruct --requests 48
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
    from vlm_autodrive.builders.core.stage import Stage
    from vlm_autodrive.builders.core.taxonomy import load_taxonomy
    from vlm_autodrive.builders.generate.config import GenerateConfig
    from vlm_autodrive.builders.generate.stage import run_model_splits
    from vlm_autodrive.builders.generate.stamp import STAGE

    taxonomy = load_taxonomy()
    gen = GenerateConfig.model_validate(
        {
            "models": {"m": {"model": "scripted", "revision": "1"}},
            "configs": {
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
    # Every request cached, but the stage stamp dropped: what a rebuild after an edit
    # does (re-render, re-key and re-parse all), not the no-change skip (bench_rebuild.py).
    Stage(build, STAGE).invalidate()
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


def smollm2_run(model_dir: Path, requests: int, max_tokens: int) -> None:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine in this process
    import pyarrow.parquet as pq

    from vlm_autodrive.builders.core.taxonomy import load_taxonomy
    from vlm_autodrive.builders.generate.backends.vllm_backend import VLLMBackend
    from vlm_autodrive.builders.generate.config import GenerateConfig
    from vlm_autodrive.builders.generate.stage import run_model_splits
    from vlm_autodrive.builders.rules.stage import RuleSplitsConfig, build_rule_splits
    from vlm_autodrive.builders.synthetic.smollm2 import ENGINE_KWARGS
    from vlm_autodrive.builders.synthetic.tables import write_synthetic_tables

    taxonomy = load_taxonomy()
    backend = VLLMBackend(
        str(model_dir), max_model_len=2048, enable_prefix_caching=False, **ENGINE_KWARGS
    )
    t = time.perf_counter()
    llm = backend.start()
    start_s = time.perf_counter() - t
    gen = GenerateConfig.model_validate(
        {
            "models": {"text": {"model": str(model_dir), "backend": "vllm"}},
            "configs": {"vqa": {"model": "text", "temperature": 0.2, "max_tokens": max_tokens}},
        }
    )
    from vlm_autodrive.builders.generate.backends.base import GenerationRequest, Sampling

    # Warm-up, outside both timings: a few requests through the engine.
    hello = [{"role": "user", "content": "Describe a wet road in one sentence."}]
    warm = [GenerationRequest(f"warm{i}", hello, Sampling(max_tokens=32, seed=i)) for i in range(4)]
    list(backend.generate(warm))
    seen: list = []
    inner = backend.generate

    def recording(reqs):
        for r in reqs:
            seen.append(r)
            yield r

    backend.generate = lambda reqs: inner(recording(reqs))
    with tempfile.TemporaryDirectory(prefix="bench-smollm2-") as tmp:
        build = Path(tmp)
        # ~5 train/test clips per synthetic video: enough videos for `requests` clips.
        write_synthetic_tables(build, max(1, -(-requests // 4)), seed=0)
        build_rule_splits(build, RuleSplitsConfig(on_short="take_available"), taxonomy, {})
        clips = pq_rows(build / "data" / "caption_metadata")
        keep = set(sorted(clips)[:requests])
        restrict_to(build, keep)
        t = time.perf_counter()
        reports = run_model_splits(
            build, gen, taxonomy, open_backend=lambda c, s: backend, progress=False
        )
        stage_s = time.perf_counter() - t
        backend.generate = inner
        mcq = [
            (row["question"], row["options"])
            for p in sorted((build / "data" / "mcq").glob("*.parquet"))
            for row in pq.read_table(p, columns=["question", "options"]).to_pylist()
        ][:requests]
    (r,) = reports
    # vLLM alone on the very same requests (same messages, sampling, seeds, constraints).
    params = [backend.sampling_params(q) for q in seen]
    t = time.perf_counter()
    outs = llm.chat([q.messages for q in seen], params, use_tqdm=False)
    alone_s = time.perf_counter() - t
    alone_tokens = sum(len(c.token_ids) for o in outs for c in o.outputs)
    # The audit's text-only model baseline (builders/audit/model.py: question and options,
    # no video, one constrained letter) on the build's MCQ rows, same engine.
    from vlm_autodrive.builders.audit.model import backend_answerer

    t = time.perf_counter()
    letters = backend_answerer(backend)(mcq)
    blind_s = time.perf_counter() - t
    backend.close()
    print(
        json.dumps(
            {
                "requests": r.requests,
                "sent": r.sent,
                "kept": r.kept,
                "failed": r.failed,
                "engine_start_s": start_s,
                "stage_s": stage_s,
                "stage_tokens": r.completion_tokens,
                "alone_s": alone_s,
                "alone_tokens": alone_tokens,
                "blind_requests": len(mcq),
                "blind_answered": sum(x is not None for x in letters),
                "blind_s": blind_s,
            }
        )
    )


def pq_rows(folder: Path) -> list[str]:
    import pyarrow.parquet as pq

    files = sorted(folder.glob("*.parquet"))
    return [c for p in files for c in pq.read_table(p)["clip_id"].to_pylist()]


def restrict_to(build: Path, keep: set[str]) -> None:
    """Keep only `keep` clips in the rule configs the stage reads."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for p in sorted((build / "data").glob("*/*.parquet")):
        t = pq.read_table(p)
        if "clip_id" in t.column_names:
            pq.write_table(t.filter(pc.is_in(t["clip_id"], value_set=pa_array(keep))), p)


def pa_array(values):
    import pyarrow as pa

    return pa.array(sorted(values))


def print_smollm2(r: dict) -> None:
    stage_rps, alone_rps = r["requests"] / r["stage_s"], r["requests"] / r["alone_s"]
    ratio = alone_rps and stage_rps / alone_rps
    print(
        f"SmolLM2-135M-Instruct, vLLM's CPU build in process, vqa split (JSON schema): "
        f"{r['requests']} requests, kept {r['kept']}, failed {r['failed']}; engine start "
        f"{r['engine_start_s']:.1f} s (not timed below)"
    )
    print(
        f"  whole stage: {r['stage_s']:.1f} s = {stage_rps:.2f} requests/s, "
        f"{r['stage_tokens'] / r['stage_s']:.1f} tokens/s ({r['stage_tokens']} tokens)"
    )
    print(
        f"  vLLM alone (LLM.chat, same requests): {r['alone_s']:.1f} s = {alone_rps:.2f} "
        f"requests/s, {r['alone_tokens'] / r['alone_s']:.1f} tokens/s ({r['alone_tokens']} tokens)"
    )
    print(
        f"  stage / vLLM alone (requests/s) = {ratio:.3f} "
        f"(target >= 0.95: {'met' if ratio >= 0.95 else 'MISSED'})"
    )
    if r.get("blind_requests"):
        blind_rps = r["blind_requests"] / r["blind_s"]
        print(
            f"  the audit's text-model baseline (mcq rows, no video, one letter): "
            f"{r['blind_requests']} requests ({r['blind_answered']} answered) in "
            f"{r['blind_s']:.1f} s = {blind_rps:.2f} requests/s = {blind_rps / stage_rps:.1f}x "
            f"the generation stage's"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=10_000)
    ap.add_argument("--smollm2", type=Path, help="SmolLM2 folder: measure on vLLM instead")
    ap.add_argument("--requests", type=int, default=48, help="with --smollm2")
    ap.add_argument("--max-tokens", type=int, default=512, help="with --smollm2")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--smollm2-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    if args.smollm2:
        if args.smollm2_child:
            smollm2_run(args.smollm2, args.requests, args.max_tokens)
            return
        cmd = [sys.executable, __file__, "--smollm2", str(args.smollm2), "--smollm2-child"]
        cmd += ["--requests", str(args.requests), "--max-tokens", str(args.max_tokens)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        print_smollm2(json.loads(out.strip().splitlines()[-1]))
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
