"""Helpers both model backends share: message folding, constraints, CPU-build defaults.

Nothing here imports vLLM, torch or openai.
"""

from __future__ import annotations

import copy
import os
from typing import Any

CONSTRAINT_KINDS = ("json", "regex", "choice")

# vLLM's CPU build reads these; GPU builds ignore them, so setting them is harmless there.
CPU_ENV_DEFAULTS = {
    # KV cache size in GiB. Without it vLLM reserves `gpu_memory_utilization` (0.92) of
    # the NUMA node's memory and refuses to start when other processes hold some.
    "VLLM_CPU_KVCACHE_SPACE": "1",
}
# vLLM's CPU build keeps a core out of its compute threads for the frontend
# (VLLM_CPU_NUM_OF_RESERVED_CPU, automatic). On a machine of a few cores that idles much
# of it: on 2 cores, SmolLM2-135M, 28 JSON-constrained requests, 318 -> 475 tokens/s with
# none reserved (267 -> 344 unconstrained). Bigger machines keep vLLM's choice.
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
if _CORES <= 4:  # the cores this process may run on (a container's share, not the host's)
    CPU_ENV_DEFAULTS["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"


class BackendUnavailable(RuntimeError):
    """The model server (or engine) cannot be reached at all; nothing was sent."""


def fold_system_prompt(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with the system turns moved into the first user turn (R1 distills).

    DeepSeek-R1 distills are trained without a system prompt; their model cards ask for
    the instructions to be in the user turn. The system text goes first, separated by a
    blank line. Content given as a list of parts gets the text as a leading text part.
    The input is not modified.
    """
    system = [m for m in messages if m.get("role") == "system"]
    if not system:
        return messages
    text = "\n\n".join(_text_of(m.get("content")) for m in system).strip()
    out = [copy.copy(m) for m in messages if m.get("role") != "system"]
    for m in out:
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                m["content"] = [{"type": "text", "text": text + "\n\n"}, *content]
            else:
                m["content"] = f"{text}\n\n{content or ''}"
            return out
    return [{"role": "user", "content": text}, *out]


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if p.get("type") == "text")
    return str(content or "")


def check_constraint(constraint: dict[str, Any] | None) -> dict[str, Any] | None:
    """The constraint itself when well-formed (None or exactly one of json/regex/choice).

    Raises ValueError otherwise, so the backend turns it into that request's error.
    """
    if constraint is None:
        return None
    if len(constraint) != 1 or next(iter(constraint)) not in CONSTRAINT_KINDS:
        raise ValueError(
            f"constraint must be one of {{'json': schema}}, {{'regex': str}}, "
            f"{{'choice': [str, ...]}}; got keys {sorted(constraint)}"
        )
    return constraint


def even_split(total: int, n: int) -> list[int]:
    """`total` split over `n` parts as evenly as integers allow (first parts get more)."""
    if n <= 0:
        return []
    base, rest = divmod(max(total, 0), n)
    return [base + (1 if i < rest else 0) for i in range(n)]
