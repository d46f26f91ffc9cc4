"""`RuleSplitsConfig`: the `rules:` section of a build recipe (rule configs and test set;
called `splits:` before, still read with a warning: builders/recipe.py).

Its own small module so that `recipe.py` can import it for `BuildRecipe.rules` without
importing the whole rule splits stage.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from vlm_autodrive.builders.core.fingerprint import FILE_INPUT
from vlm_autodrive.builders.core.strict import Strict

RULE_CONFIGS = ("mcq", "caption_metadata", "cause_vqa")
DEFAULT_CONFIGS = ("mcq", "caption_metadata")


class RuleSplitsConfig(Strict):
    """Which rule configs to build, how to draw the test set, how to order MCQ options."""

    configs: list[Literal["mcq", "caption_metadata", "cause_vqa"]] = Field(
        default_factory=lambda: list(DEFAULT_CONFIGS),
        description="rule configs to build (cause_vqa: the manifest's cause questions)",
    )
    test_per_class: int = Field(66, ge=0, description="test clips per class (paper: 66)")
    seed: int = Field(0, description="seeds the held-out videos, test clips and MCQ orders")
    on_short: Literal["error", "take_available"] = Field(
        "error", description="a class too small for the test: stop, or take what the cap allows"
    )
    max_test_fraction: float = Field(
        0.5, gt=0, le=1, description="largest share of a class's clips the test may take"
    )
    mcq_options: Literal["fixed", "balanced"] = Field(
        "balanced", description="fixed: taxonomy (paper) order; balanced: seeded per clip"
    )
    templates: str | None = Field(
        None,
        description="folder searched before the bundled templates (edited copies)",
        json_schema_extra=FILE_INPUT,
    )
    pin_assignment: str | None = Field(
        None,
        description="keep old videos on the side a previous release gave them: a release "
        "or build folder, its split/assignment.parquet, or ORG/NAME@vX.Y.Z on the Hub",
        json_schema_extra=FILE_INPUT,
    )

    @field_validator("pin_assignment")
    @classmethod
    def _pin(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if "@" in v and not re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+\.\d+\.\d+[\w.-]*", v):
            raise ValueError(f"{v!r}: a Hub release is ORG/NAME@vX.Y.Z (a tag autodrive made)")
        if not v.strip():
            raise ValueError("empty: give a folder, a file or ORG/NAME@vX.Y.Z")
        return v

    @field_validator("configs")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"configs repeat: {v}")
        return v
