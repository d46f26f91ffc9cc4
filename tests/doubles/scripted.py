"""A backend without a model: well-formed answers made from the prompt, instantly.

For measuring the pipeline's own overhead (benchmarks/bench_model_splits.py) and for
testing its bookkeeping. It answers each split the way a good model would: VQA JSON
whose event question names the label the prompt gives, a reasoning trace ending in
`answer_letter`, a reasoning-VQA JSON, a one-line caption. `garble(request)` and
`error(request)` pick requests to answer with broken JSON or to fail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator

from vlm_autodrive.builders.generate.backends.base import (
    Completion,
    GenerationRequest,
    GenerationResponse,
)

_LABEL = re.compile(r'The correct answer\s+is\s+"([^"]+)"')
_OPTIONS = re.compile(r"its options are exactly: ([^.\n]+(?:\n[^.\n]+)?)\.")


class ScriptedBackend:
    """Instant, deterministic answers; `sent` lists the request ids it received."""

    model_id = "scripted@1"

    def __init__(
        self,
        answer_letter: str = "A",
        garble: Callable[[GenerationRequest], bool] | None = None,
        error: Callable[[GenerationRequest], bool] | None = None,
    ):
        self.answer_letter = answer_letter
        self.garble = garble or (lambda req: False)
        self.error = error or (lambda req: False)
        self.sent: list[str] = []

    def generate(self, requests: Iterable[GenerationRequest]) -> Iterator[GenerationResponse]:
        for req in requests:
            self.sent.append(req.request_id)
            if self.error(req):
                yield GenerationResponse(req.request_id, error="HTTP 500 after 3 tries", attempts=3)
                continue
            text = "{not json" if self.garble(req) else self._answer(req)
            comps = [Completion(text, None, "stop", len(text) // 4) for _ in range(req.sampling.n)]
            yield GenerationResponse(req.request_id, comps, prompt_tokens=100)

    def close(self) -> None:
        pass

    def _answer(self, req: GenerationRequest) -> str:
        content = req.messages[-1]["content"]
        user = content if isinstance(content, str) else content[-1]["text"]
        c = req.constraint or {}
        if "json" in c and "questions" in c["json"]["properties"]:
            label = _LABEL.search(user).group(1)
            classes = [x.strip() for x in _OPTIONS.search(user).group(1).split(",")]
            qs = [
                {
                    "dimension": "event_type",
                    "question": "What happens in the clip?",
                    "options": classes,
                    "answer": "ABCDEFGHIJ"[classes.index(label)],
                }
            ]
            for d in ("weather", "lighting", "road_type", "scene"):
                qs.append(
                    {
                        "dimension": d,
                        "question": f"Which {d.replace('_', ' ')}?",
                        "options": ["one", "two", "three"],
                        "answer": "B",
                    }
                )
            return json.dumps({"questions": qs})
        if "json" in c:
            return json.dumps(
                {
                    "question": "Why was the manoeuvre risky?",
                    "options": ["a red light", "a pedestrian", "the gap closed", "a pothole"],
                    "answer": "C",
                    "reasons": ["The car ahead brakes.", "The gap closes."],
                }
            )
        if "regex" in c:
            return (
                f"<think>\nThe car ahead brakes hard.\n</think>\n\n"
                f"<answer>\n{self.answer_letter}\n</answer>"
            )
        return "A car drives along a wet road."
