"""Ray against the local engines on this machine: chunking, and generation.

Chunking: the same ingest of synthetic 30 fps dashcam videos (`bench_chunk.py`'s cache)
cut into the paper's windows (6 s every 5.5 s, reencode) by the local process pool and by
Ray tasks, 1 and 2 workers each. Printed per engine and worker count: median seconds,
source seconds per wall second, Ray/local ratio; then Ray's overhead per video with the
cluster already up (the difference to the local pool) and with its start included.
Target (issue 16): Ray >= 0.9x the local pool at the same worker count.

Generation: the same requests through the `openai` backend and through `backend: ray`
(HttpRequestProcessorConfig) against the fake server answering after `--delay` seconds,
at the same concurrency (openai: `--concurrency` in flight; ray: `replicas x batch_size`
= the same number). Ideal = concurrency / delay requests per second; printed: achieved,
ideal, fraction, with Ray's start excluded (a warm-up window first). Target: >= 0.8.

    python benchmarks/bench_ray.py [--videos 4] [--duration 40] [--runs 3]
        [--requests 640] [--concurrency 64] [--delay 0.2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_chunk's video cache

from bench_chunk import sample_manifest

from vlm_autodrive.builders.clips.stage import run_chunk
from vlm_autodrive.builders.core.ray_cluster import RaySettings
from vlm_autodrive.builders.core.sections import ChunkConfig
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.generate.backends.base import (
    GenerationRequest,
    Sampling,
)
from vlm_autodrive.builders.generate.backends.local_server import free_port
from vlm_autodrive.builders.generate.backends.openai_backend import OpenAIBackend
from vlm_autodrive.builders.generate.backends.ray_backend import RayBackend
from vlm_autodrive.builders.ingest.stage import run_ingest

TAX = load_taxonomy()


def chunk_times(ingested: Path, work: Path, engine: str, workers: int, runs: int) -> list[float]:
    config = ChunkConfig(window=6, stride=5.5, mode="reencode", workers=workers)
    times = []
    for run in range(runs):
        build = work / f"{engine}-{workers}-{run}"
        shutil.copytree(ingested, build)
        t = time.perf_counter()
        run_chunk(build, config, TAX, workers, progress=False, engine=engine, ray=RaySettings())
        times.append(time.perf_counter() - t)
        shutil.rmtree(build)
    return times


def bench_chunk(args, ray) -> None:
    manifest = sample_manifest(args.videos, args.duration)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ingested = work / "ingested"
        run_ingest(manifest, ingested, TAX, progress=False)
        source = args.videos * args.duration
        print(f"chunking: {args.videos} videos x {args.duration:g} s, reencode, 6 s / 5.5 s")
        t = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - t
        for workers in (1, 2):
            local = statistics.median(chunk_times(ingested, work, "local", workers, args.runs))
            on_ray = statistics.median(chunk_times(ingested, work, "ray", workers, args.runs))
            over = (on_ray - local) / args.videos
            print(
                f"  workers {workers}: local {local:6.2f} s ({source / local:5.1f}x real time)"
                f"  ray {on_ray:6.2f} s ({source / on_ray:5.1f}x)  ray/local speed "
                f"{local / on_ray:.2f}  (target >= 0.90: "
                f"{'met' if local / on_ray >= 0.9 else 'NOT met'})"
            )
            print(
                f"    ray overhead per video: {over * 1000:6.0f} ms with the cluster up, "
                f"{(over + startup / args.videos) * 1000:6.0f} ms with its start "
                f"({startup:.1f} s) shared by the {args.videos} videos"
            )


def bench_generate(args) -> None:
    port = free_port()
    command = [sys.executable, "-m", "tests.doubles.fake_server", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--delay", str(args.delay)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        if not server.stdout.readline().startswith("listening"):
            raise SystemExit("the fake server did not start")
        url = f"http://127.0.0.1:{port}/v1"
        messages = [{"role": "user", "content": "Describe the clip in one sentence."}]
        requests = [
            GenerationRequest(f"r{i}", messages, Sampling(max_tokens=32, seed=i))
            for i in range(args.requests)
        ]
        warm = requests[: args.concurrency]  # imports, connections: not timed
        ideal = args.concurrency / args.delay
        print(
            f"generation: {args.requests} requests, concurrency {args.concurrency}, "
            f"server delay {args.delay:g} s, ideal {ideal:.0f} req/s"
        )
        with OpenAIBackend("fake-model", [url], max_concurrency=args.concurrency) as backend:
            list(backend.generate(warm))
            t = time.perf_counter()
            got = list(backend.generate(requests))
            openai_s = time.perf_counter() - t
        _report("openai", got, openai_s, ideal)
        replicas = 4
        ray_backend = RayBackend(
            "fake-model",
            "fake@1",
            base_urls=[url],
            replicas=replicas,
            batch_size=args.concurrency // replicas,
        )
        # Ray Data starts the HTTP actors for every dataset (one per split in a build):
        # timed with it, and from the first answer on (the rate a long split runs at).
        t = time.perf_counter()
        got, stamps = [], []
        for r in ray_backend.generate(requests):
            got.append(r)
            stamps.append(time.perf_counter())
        ray_s = stamps[-1] - t
        first = stamps[0] - t
        name = f"ray ({replicas} x {args.concurrency // replicas})"
        _report(name + " incl. start", got, ray_s, ideal)
        steady = (len(got) - 1) / (stamps[-1] - stamps[0])
        print(
            f"  {name} from the first answer on: {steady:6.1f} req/s  fraction of ideal "
            f"{steady / ideal:.2f}  (target >= 0.80: "
            f"{'met' if steady / ideal >= 0.8 else 'NOT met'}); start to first answer "
            f"{first:.1f} s"
        )
    finally:
        server.kill()
        server.wait()


def _report(name: str, got: list, seconds: float, ideal: float) -> None:
    failed = sum(1 for r in got if r.error)
    rate = len(got) / seconds
    print(
        f"  {name:<14} {seconds:6.2f} s  {rate:6.1f} req/s  fraction of ideal "
        f"{rate / ideal:.2f}  failed {failed}  (target >= 0.80: "
        f"{'met' if rate / ideal >= 0.8 and not failed else 'NOT met'})"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--duration", type=float, default=40.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--requests", type=int, default=640)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--delay", type=float, default=0.2)
    p.add_argument("--only", choices=["chunk", "generate"])
    args = p.parse_args()
    import ray

    if args.only != "generate":
        bench_chunk(args, ray)
    if args.only != "chunk":
        if not ray.is_initialized():
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        bench_generate(args)
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
