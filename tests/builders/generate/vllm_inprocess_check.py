"""Runs `VLLMBackend` on a few requests inside `.venv-vllm`; prints the responses as JSON.

Called by tests/builders/test_backends.py through `.venv-vllm/bin/python` (the test
suite itself runs in `.venv`, which has no vLLM):

    python tests/builders/generate/vllm_inprocess_check.py MODEL_DIR OUT_JSON

Writes one JSON object, {"responses": {request_id: response as dict}, "seconds": {...}},
to OUT_JSON (vLLM logs to stdout, so stdout is not used for the result).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

from vlm_autodrive.builders.generate.backends.base import GenerationRequest, Sampling
from vlm_autodrive.builders.generate.backends.vllm_backend import VLLMBackend

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"enum": ["A", "B", "C"]}, "confidence": {"enum": [1, 2, 3]}},
    "required": ["answer", "confidence"],
    "additionalProperties": False,
}
MESSAGES = [
    {"role": "system", "content": "You label dashcam clips."},
    {"role": "user", "content": "A truck brakes hard in front of the ego car. Which class?"},
]


def requests() -> list[GenerationRequest]:
    hot = Sampling(temperature=1.0, top_p=0.95, max_tokens=24, n=2, seed=7)
    out = [
        GenerationRequest("n2_seed7_a", MESSAGES, hot),
        GenerationRequest("n2_seed7_b", MESSAGES, hot),
        GenerationRequest("n2_seed8", MESSAGES, dataclasses.replace(hot, seed=8)),
        GenerationRequest(
            "json", MESSAGES, Sampling(temperature=1.0, max_tokens=64, seed=1), {"json": SCHEMA}
        ),
        GenerationRequest(
            "choice", MESSAGES, Sampling(max_tokens=8), {"choice": ["Collision", "Normal"]}
        ),
        GenerationRequest(
            "think",
            MESSAGES,
            Sampling(max_tokens=32, seed=3, temperature=1.0),
            {"regex": r"<think>[a-z ]{3,12}</think>\n\n(A|B|C)"},
        ),
        # 600 words is far past the 256-token context the check runs the engine with.
        GenerationRequest(
            "too_long", [{"role": "user", "content": "word " * 600}], Sampling(max_tokens=8)
        ),
        GenerationRequest("bad_constraint", MESSAGES, Sampling(max_tokens=8), {"grammar": "x"}),
    ]
    # A batch larger than max_pending, to exercise topping the engine up.
    out += [
        GenerationRequest(f"bulk{i}", MESSAGES, Sampling(max_tokens=4, seed=i)) for i in range(40)
    ]
    return out


def main() -> int:
    model_dir, out_path = sys.argv[1], sys.argv[2]
    t0 = time.monotonic()
    backend = VLLMBackend(
        model_dir, max_model_len=256, fold_system_prompt=True, max_pending=16, dtype="float32"
    )
    backend.start()
    t1 = time.monotonic()
    responses = {r.request_id: dataclasses.asdict(r) for r in backend.generate(requests())}
    t2 = time.monotonic()
    backend.close()
    seconds = {"engine_start": t1 - t0, "generate": t2 - t1}
    with open(out_path, "w") as f:
        json.dump({"responses": responses, "seconds": seconds}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
