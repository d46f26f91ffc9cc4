"""What the evaluation asks of a model runner, whatever serves the model.

In: `EvalItem`s (one clip, one rendered prompt, one answer mode). Out: `RunnerOutput`s
with the raw text, the reasoning when the server split it off, or an error. A runner
never raises for one bad item: it returns an output with `error` set, so the harness
can score the rest and report the failures.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class VideoSettings:
    """How clips are turned into model input, as in training.

    `fps`: frames per second sampled from the clip; `max_frames`: cap on frames per clip
    (sampled uniformly over the clip when the cap binds); `max_pixels`: cap on pixels per
    frame (the processor resizes below it). None leaves the model's processor default.
    """

    fps: float | None = 2.0
    max_frames: int | None = 32
    max_pixels: int | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"fps": self.fps, "max_frames": self.max_frames, "max_pixels": self.max_pixels}


@dataclass(frozen=True)
class EvalItem:
    """One request: `key` identifies it in the outputs; `video` is an absolute path, or
    None in blind mode (the question without the video); the user turn is the video then
    `prompt`, after a `system` turn when one is set."""

    key: str
    video: Path | None
    prompt: str
    mode: str
    max_new_tokens: int
    system: str | None = None

    def messages(self, video_part: dict[str, Any] | None) -> list[dict[str, Any]]:
        """OpenAI-style chat messages with `video_part` (the runner's form of the video;
        None: text only, as blind mode asks)."""
        turns: list[dict[str, Any]] = []
        if self.system:
            turns.append({"role": "system", "content": self.system})
        user = [*([video_part] if video_part else []), {"type": "text", "text": self.prompt}]
        return [*turns, {"role": "user", "content": user}]


@dataclass(frozen=True)
class RunnerOutput:
    """The answer to one item: `text` (empty on error), `reasoning` when it came apart."""

    key: str
    text: str
    reasoning: str | None = None
    error: str | None = None
    finish_reason: str | None = None


class Runner(Protocol):
    """A model the harness can query."""

    model_id: str  # what the report names as the model (path, id or served name)

    def describe(self) -> dict[str, object]:
        """Settings worth recording in the report (runner kind, device, endpoint ...)."""
        ...

    def generate(self, items: Sequence[EvalItem]) -> Iterator[RunnerOutput]:
        """Yield one output per item, in any order, as they finish."""
        ...

    def close(self) -> None:
        """Release the model, connections or server."""
        ...
