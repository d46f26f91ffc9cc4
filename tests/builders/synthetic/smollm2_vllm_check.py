"""Runs `VLLMBackend` on the SmolLM2-135M-Instruct folder inside `.venv-vllm`.

Called by tests/builders/synthetic/test_smollm2.py through `.venv-vllm/bin/python` (the test
suite itself runs in `.venv`, which has no vLLM):

    python tests/builders/synthetic/smollm2_vllm_check.py MODEL_DIR OUT_JSON

One greedy plain question and four JSON-schema-constrained ones, with the engine options
`builders/synthetic/smollm2.py` names for this model. Writes {"responses": {request_id: response as
dict}, "seconds": {...}} to OUT_JSON (vLLM logs to stdout, so stdout is not used).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

from vlm_autodrive.builders.generate.backends.base import GenerationRequest, Sampling
from vlm_autodrive.builders.generate.backends.vllm_backend import VLLMBackend
from vlm_autodrive.builders.synthetic.smollm2 import ENGINE_KWARGS

# minLength: without it the model fills string fields with "" (valid, but empty).
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 40},
        "country": {"type": "string", "minLength": 1, "maxLength": 40},
        "confidence": {"enum": ["low", "medium", "high"]},
    },
    "required": ["city", "country", "confidence"],
    "additionalProperties": False,
}
QUESTIONS = [
    "What is the capital of France?",
    "Which city has the Eiffel Tower?",
    "What is the capital of Italy?",
    "Where is Big Ben?",
]


def requests() -> list[GenerationRequest]:
    plain = [{"role": "user", "content": "What is the capital of France?"}]
    out = [GenerationRequest("plain", plain, Sampling(temperature=0.0, max_tokens=48))]
    for i, question in enumerate(QUESTIONS):
        messages = [
            {
                "role": "user",
                "content": f"Answer in JSON with city, country, confidence. {question}",
            }
        ]
        # The first greedy (its answer is checked), the others sampled.
        sampling = Sampling(temperature=0.7 if i else 0.0, max_tokens=96, seed=i)
        out.append(GenerationRequest(f"json{i}", messages, sampling, {"json": SCHEMA}))
    return out


def main() -> int:
    model_dir, out_path = sys.argv[1], sys.argv[2]
    t0 = time.monotonic()
    backend = VLLMBackend(model_dir, max_model_len=1024, **ENGINE_KWARGS)
    backend.start()
    t1 = time.monotonic()
    responses = {r.request_id: dataclasses.asdict(r) for r in backend.generate(requests())}
    t2 = time.monotonic()
    backend.close()
    seconds = {"engine_start": t1 - t0, "generate": t2 - t1}
    with open(out_path, "w") as f:
        json.dump({"responses": responses, "seconds": seconds, "schema": SCHEMA}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
