"""vlm-autodrive: dashcam event videos -> supervision for video vision-language models.

The Python API (vlm_autodrive/api.py) is re-exported here, imported on first use so
that `import vlm_autodrive` stays cheap::

    import vlm_autodrive as ad

    result = ad.run(ad.open_recipe("recipes/quickstart.yaml"))
    mcq = ad.load(result.build, "mcq")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = (
    "BuildResult",
    "Plan",
    "Recipe",
    "evaluate",
    "load",
    "mix",
    "open_recipe",
    "plan",
    "publish",
    "run",
    "show",
)
__all__ = ["__version__", *_API]

if TYPE_CHECKING:  # for type checkers and editors; at run time __getattr__ imports it
    from vlm_autodrive.api import (  # noqa: F401
        BuildResult,
        Plan,
        Recipe,
        evaluate,
        load,
        mix,
        open_recipe,
        plan,
        publish,
        run,
        show,
    )


def __getattr__(name: str) -> Any:
    if name in _API:
        from vlm_autodrive import api

        return getattr(api, name)
    raise AttributeError(f"module 'vlm_autodrive' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
