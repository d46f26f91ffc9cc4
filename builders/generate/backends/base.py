"""The request/response shape every backend speaks, and the backend protocol.

The pipeline builds `GenerationRequest`s, a backend turns them into
`GenerationResponse`s, and the pipeline never knows which backend ran. A backend never
raises for one bad request: it returns a response with `error` set (after its retries),
so `requests = responses` always holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters; part of the cache key."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    n: int = 1  # samples per request (vLLM shares the prompt's prefill between them)
    seed: int | None = None


@dataclass
class GenerationRequest:
    """One chat request.

    `messages` are OpenAI chat messages; `content` is a string, or a list of parts
    `{"type": "text", "text": ...}` / `{"type": "video_url", "video_url": {"url": ...}}`.
    `constraint` is None or one of `{"json": <JSON schema>}`, `{"regex": str}`,
    `{"choice": [str, ...]}`; with a reasoning model it applies after the reasoning.
    `key_extra` is part of the cache key and never sent: what makes two requests with
    the same messages different ones (the clip it is for, or the side it is shared on)
    and the content hash of an attached video (its URL names only its path).
    """

    request_id: str
    messages: list[dict[str, Any]]
    sampling: Sampling = field(default_factory=Sampling)
    constraint: dict[str, Any] | None = None
    key_extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Completion:
    """One sample's output. `reasoning` is the text before `</think>` when there is one."""

    text: str
    reasoning: str | None = None
    finish_reason: str | None = None  # "stop", "length", ...
    completion_tokens: int = 0


@dataclass
class GenerationResponse:
    """The answer to one request: `n` completions, or an `error` after `attempts` tries."""

    request_id: str
    completions: list[Completion] = field(default_factory=list)
    prompt_tokens: int = 0
    error: str | None = None
    attempts: int = 1


class Backend(Protocol):
    """What the pipeline needs from a backend."""

    model_id: str  # backend-independent model id and revision, e.g. "org/name@rev"

    def generate(self, requests: Iterable[GenerationRequest]) -> Iterator[GenerationResponse]:
        """Yield one response per request, in any order, as they finish."""
        ...

    def close(self) -> None:
        """Release the engine, connections or server."""
        ...


def split_reasoning(text: str, reasoning: str | None = None) -> tuple[str | None, str]:
    """(reasoning, answer) of a model output.

    When the server already separated the reasoning it is kept; otherwise the text is
    split at the last `</think>` (R1 distills often omit the opening `<think>`).
    """
    if reasoning is not None:
        return reasoning, text
    head, sep, tail = text.rpartition("</think>")
    if not sep:
        return None, text
    return head.replace("<think>", "", 1).strip(), tail.strip()
