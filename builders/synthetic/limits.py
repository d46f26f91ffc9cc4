"""The bounds of a synthetic sample's settings, checked where a sample is asked for (the
`sample` command, a recipe's `sample:` section) and again by `generate_sample` itself.

A setting outside them would not make a bigger sample but a failure far from its cause:
`--width 100000` had numpy ask for 37 GiB, `--fps 0` divides by zero, an odd width is
refused by the H.264 encoder (yuv420p halves both sides). Each bound is a size a dashcam
sample can have: up to 4K frames, an hour a video, 120 fps, 100,000 videos.
"""

from __future__ import annotations

from typing import Any

# setting: (smallest, largest)
SAMPLE_BOUNDS: dict[str, tuple[float, float]] = {
    "videos": (1, 100_000),
    "seed": (0, 2**63 - 1),
    "duration": (2.0, 3600.0),  # an event needs room before and after it
    "width": (16, 3840),
    "height": (16, 2160),
    "fps": (1.0, 120.0),
    "gop": (1, 10_000),
}
_EVEN = ("width", "height")


def sample_setting_problem(name: str, value: Any) -> str | None:
    """Why `value` cannot be the sample setting `name`, or None when it can."""
    low, high = SAMPLE_BOUNDS[name]
    if not low <= value <= high:
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        return f"{shown} is out of range: from {low:g} to {high:,g}" + (
            " (the synthetic sample draws every frame in memory)" if name in _EVEN else ""
        )
    if name in _EVEN and value % 2:
        return f"{value} is odd: frame sides must be even numbers (H.264 in yuv420p)"
    return None


def check_sample_settings(**settings: Any) -> None:
    """ValueError naming the first setting out of bounds (`width 100000: ...`)."""
    for name, value in settings.items():
        problem = sample_setting_problem(name, value)
        if problem:
            raise ValueError(f"sample {name}: {problem}")
