"""`openai` backend throughput against a server that answers after a fixed delay.

A real HTTP server (`FakeOpenAIServer`: asyncio streams, keep-alive, the chat-completions
JSON) runs in its own process on a free loopback port and answers every request after
`--delay` seconds. The backend sends `--requests` requests at `--concurrency`; with no
overhead it would reach concurrency / delay requests per second. Printed: achieved
requests/s, that ideal, and their ratio. Target (issue 4): ratio >= 0.8 at concurrency 64.
The run is bounded (a fixed number of requests) and stops the server itself.

    python benchmarks/bench_openai_backend.py [--requests 640] [--concurrency 64] [--delay 0.2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from vlm_autodrive.builders.generate.backends.base import GenerationRequest, Sampling
from vlm_autodrive.builders.generate.backends.local_server import free_port
from vlm_autodrive.builders.generate.backends.openai_backend import OpenAIBackend


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=640)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--delay", type=float, default=0.2)
    args = p.parse_args()

    port = free_port()
    module = "tests.doubles.fake_server"
    server = subprocess.Popen(
        [sys.executable, "-m", module, "--port", str(port), "--delay", str(args.delay)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],  # the fake server is a test double in tests/
    )
    try:
        if not server.stdout.readline().startswith("listening"):
            raise SystemExit("the fake server did not start")
        backend = OpenAIBackend(
            "fake-model",
            [f"http://127.0.0.1:{port}/v1"],
            max_concurrency=args.concurrency,
            timeout=30,
            max_retries=0,
        )
        messages = [{"role": "user", "content": "Describe the clip in one sentence."}]
        requests = [
            GenerationRequest(f"r{i}", messages, Sampling(max_tokens=32, seed=i))
            for i in range(args.requests)
        ]
        with backend:
            # Warm-up: imports, client creation, connections (not timed).
            list(backend.generate(requests[: args.concurrency]))
            t0 = time.perf_counter()
            responses = list(backend.generate(requests))
            elapsed = time.perf_counter() - t0
    finally:
        server.kill()
        server.wait()

    failed = sum(1 for r in responses if r.error)
    achieved = len(responses) / elapsed
    ideal = args.concurrency / args.delay
    ratio = achieved / ideal
    print(
        f"requests {len(responses)}  failed {failed}  concurrency {args.concurrency}  "
        f"delay {args.delay:.3f} s  elapsed {elapsed:.2f} s"
    )
    print(f"achieved {achieved:.1f} req/s  ideal {ideal:.1f} req/s  fraction {ratio:.2f}")
    print(f"target fraction >= 0.80: {'met' if ratio >= 0.8 and not failed else 'NOT met'}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
