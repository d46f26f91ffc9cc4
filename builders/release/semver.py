"""Semantic versions of published datasets: parsing, ordering, tag names.

In: a version string as the user typed it (`0.2.0`, `1.0.0-rc.1`). Out: the parsed
version, its tag (`v0.2.0`) and a sort key with semver precedence (a pre-release sorts
before its release). Build metadata (`+...`) is refused: it does not take part in
precedence, so two versions differing only by it would be the same release.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUM = r"0|[1-9]\d*"
_PRE_ID = r"0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*"
_SEMVER = re.compile(rf"^({_NUM})\.({_NUM})\.({_NUM})(?:-((?:{_PRE_ID})(?:\.(?:{_PRE_ID}))*))?$")
TAG_PREFIX = "v"


@dataclass(frozen=True, order=False)
class Version:
    major: int
    minor: int
    patch: int
    pre: tuple[str, ...] = ()

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return core + (f"-{'.'.join(self.pre)}" if self.pre else "")

    @property
    def tag(self) -> str:
        return f"{TAG_PREFIX}{self}"

    def key(self) -> tuple:
        """Sort key with semver precedence."""
        # A release sorts after its pre-releases; numeric identifiers before alphanumeric.
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.pre)
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, pre)


def parse_version(text: str) -> Version:
    """`X.Y.Z` or `X.Y.Z-pre.release`; ValueError with a hint otherwise."""
    m = _SEMVER.match(text)
    if not m:
        hint = ""
        if text.startswith(TAG_PREFIX) and _SEMVER.match(text[1:]):
            hint = f" (give it without the leading v: {text[1:]}; the tag gets the v)"
        elif "+" in text:
            hint = " (build metadata after + is not allowed: it does not order releases)"
        raise ValueError(f"version {text!r} is not a semantic version X.Y.Z{hint}")
    major, minor, patch, pre = m.groups()
    return Version(int(major), int(minor), int(patch), tuple(pre.split(".")) if pre else ())


def version_from_tag(tag: str) -> Version | None:
    """The version a tag names (`v0.2.0`), or None for tags that are not release tags."""
    if not tag.startswith(TAG_PREFIX):
        return None
    try:
        return parse_version(tag[len(TAG_PREFIX) :])
    except ValueError:
        return None


def previous_version(version: Version, existing: list[Version]) -> Version | None:
    """The highest existing version below `version` (what its changelog compares with)."""
    lower = [v for v in existing if v.key() < version.key()]
    return max(lower, key=Version.key) if lower else None
