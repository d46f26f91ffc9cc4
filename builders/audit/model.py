"""The text-only model baseline: a language model asked each question with its options
and no video.

In: any generation backend (builders/generate/backends: the recipe's text model through
vLLM in process, a vLLM server, Ray), the questions and options. Out: `backend_answerer`
gives the function blind.py calls with a batch of (question, options) and that returns
one letter (or None: no answer, an error) per question. The requests go out together, so
the backend batches them; the answer is constrained to the option letters (`choice`),
at temperature 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from vlm_autodrive.builders.core.answers import OPTION_LETTERS
from vlm_autodrive.builders.generate.backends.base import Backend, GenerationRequest, Sampling

Answerer = Callable[[list[tuple[str, list[str]]]], list[str | None]]
_OPTION_LINE = re.compile(r"(?m)^[ \t]*[A-Z][.)][ \t]")
_LETTER = re.compile(r"\b([A-Z])\b")


def blind_prompt(question: str, options: list[str]) -> str:
    """The question as the row asks it, its options listed when it does not list them,
    and the letters to answer with."""
    letters = OPTION_LETTERS[: len(options)]
    text = question.strip()
    if not _OPTION_LINE.search(text):
        text += "".join(f"\n{letter}. {o}" for letter, o in zip(letters, options, strict=True))
    return f"{text}\nAnswer with one letter ({', '.join(letters)})."


def parse_letter(text: str, n_options: int) -> str | None:
    """The first option letter standing alone in `text`; None when there is none."""
    letters = OPTION_LETTERS[:n_options]
    for m in _LETTER.finditer(text or ""):
        if m.group(1) in letters:
            return m.group(1)
    return None


def backend_answerer(backend: Backend, max_tokens: int = 8, seed: int = 0) -> Answerer:
    """A function asking `backend` every question of a batch (no video): see the module."""

    def ask(items: list[tuple[str, list[str]]]) -> list[str | None]:
        sampling = Sampling(temperature=0.0, max_tokens=max_tokens, seed=seed)
        requests = [
            GenerationRequest(
                request_id=f"blind-{k}",
                messages=[{"role": "user", "content": blind_prompt(q, opts)}],
                sampling=sampling,
                constraint={"choice": list(OPTION_LETTERS[: len(opts)])},
            )
            for k, (q, opts) in enumerate(items)
        ]
        answers: list[str | None] = [None] * len(items)
        for resp in backend.generate(requests):
            k = int(resp.request_id.split("-")[1])
            if resp.error is None and resp.completions:
                answers[k] = parse_letter(resp.completions[0].text, len(items[k][1]))
        return answers

    ask.model_id = backend.model_id  # named in the report
    return ask
