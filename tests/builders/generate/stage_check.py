"""Runs the model-splits stage inside `.venv-vllm` (the real engine or a local server).

Called by tests/builders/generate/test_real_engines.py through `.venv-vllm/bin/python`
(the test suite runs in `.venv`, which has no vLLM), from the repository root:

    python tests/builders/generate/stage_check.py BUILD GENERATE_JSON OUT_JSON

GENERATE_JSON is a `generate:` section as JSON; a model named "scripted" is answered by
the scripted test backend. Writes {"reports": [...], "prompts": {split: {clip_id or
request id: user text}}, "seconds": s} to OUT_JSON (vLLM logs to stdout).
"""

from __future__ import annotations

import json
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # tests.doubles


def main() -> int:
    from tests.doubles.scripted import ScriptedBackend
    from vlm_autodrive.builders.core.taxonomy import load_taxonomy
    from vlm_autodrive.builders.generate.backends.factory import open_backend
    from vlm_autodrive.builders.generate.config import GenerateConfig
    from vlm_autodrive.builders.generate.stage import run_model_splits

    build, gen_path, out_path = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    gen = GenerateConfig.model_validate(json.loads(Path(gen_path).read_text()))
    prompts: dict[str, str] = {}
    real = partial(open_backend, log_dir=build / "logs", media_dir=build)

    def opener(cfg, stack):
        backend = ScriptedBackend() if cfg.model == "scripted" else real(cfg, stack)
        inner = backend.generate

        def generate(requests):
            def record(rs):
                for r in rs:
                    content = r.messages[-1]["content"]
                    text = content if isinstance(content, str) else content[-1]["text"]
                    prompts[r.request_id] = text
                    yield r

            return inner(record(requests))

        backend.generate = generate
        return backend

    t0 = time.monotonic()
    reports = run_model_splits(build, gen, load_taxonomy(), open_backend=opener, progress=False)
    out = {
        "reports": [r.to_dict() for r in reports],
        "prompts": prompts,
        "seconds": time.monotonic() - t0,
    }
    Path(out_path).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
