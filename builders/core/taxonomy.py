"""The label taxonomy (`templates/taxonomy.yaml`): event classes and metadata vocabulary."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from vlm_autodrive.builders.core.strict import read_yaml_mapping, validate_model
from vlm_autodrive.resources import bundled


class EventClass(BaseModel):
    """One class of the label set."""

    model_config = ConfigDict(extra="forbid")

    name: str
    mcq_option: str
    description: str
    is_event: bool = True


class Taxonomy(BaseModel):
    """The label set, in the paper's option order, and the metadata vocabulary."""

    model_config = ConfigDict(extra="forbid")

    classes: list[EventClass]
    vocab: dict[str, list[str]] = {}

    @model_validator(mode="after")
    def _one_background(self) -> Taxonomy:
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError(f"class names repeat: {names}")
        if sum(not c.is_event for c in self.classes) != 1:
            raise ValueError("exactly one class must have is_event: false (the background)")
        return self

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def normal(self) -> str:
        """The background class that clips away from any event receive."""
        return next(c.name for c in self.classes if not c.is_event)

    def is_event(self, label: str) -> bool:
        return any(c.name == label and c.is_event for c in self.classes)


def taxonomy_from_provenance(prov: dict) -> Taxonomy | None:
    """The taxonomy a build's rule splits were made with (`provenance.json`'s
    `stages.rule_splits.taxonomy`), or None for builds that did not record it."""
    data = ((prov.get("stages") or {}).get("rule_splits") or {}).get("taxonomy")
    if not data:
        return None
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as e:
        raise ValueError(f"provenance.json: stages.rule_splits.taxonomy is invalid:\n{e}") from None


def build_taxonomy(prov: dict) -> Taxonomy:
    """The label set of a build or release, from its `provenance.json` (`prov`): the one
    its rule splits recorded; for builds made before they recorded it, the recipe's
    `taxonomy:` file, else the bundled one. Every stage after the rule splits (mix, the
    card, eval) reads it here, so a class added through `rules.templates` is known."""
    recorded = taxonomy_from_provenance(prov)
    if recorded is not None:
        return recorded
    return load_taxonomy((prov.get("recipe") or {}).get("taxonomy"))


RECORDED = "taxonomy.yaml"  # BUILD/taxonomy.yaml: the label set ingest validated with


def record_taxonomy(build_dir: Path, taxonomy: Taxonomy) -> None:
    """Write the label set a build is made with to `BUILD/taxonomy.yaml` (ingest does, on
    every run; untouched when unchanged), so later commands given no taxonomy use it."""
    import yaml

    from vlm_autodrive.builders.core.files import write_text_if_changed

    text = yaml.safe_dump(taxonomy.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    write_text_if_changed(Path(build_dir) / RECORDED, text)


def taxonomy_for_build(build_dir: Path, path: str | Path | None = None) -> Taxonomy:
    """The taxonomy a command on `build_dir` uses: `path` when given (`--taxonomy`, a
    recipe's); else the one the build recorded (`BUILD/taxonomy.yaml`, else its
    provenance); else the bundled one. A standalone `autodrive ingest` or `chunk` on a
    build with a class added through `rules.templates` keeps that class."""
    if path:
        return load_taxonomy(path)
    recorded = Path(build_dir) / RECORDED
    if recorded.is_file():
        return load_taxonomy(recorded)
    prov = Path(build_dir) / "provenance.json"
    if prov.is_file():
        import json

        try:
            found = taxonomy_from_provenance(json.loads(prov.read_text(encoding="utf-8")))
        except ValueError:
            found = None
        if found is not None:
            return found
    return load_taxonomy(None)


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load and validate a taxonomy YAML (the bundled one when `path` is None)."""
    p = Path(path) if path else bundled("templates", "taxonomy.yaml")
    return validate_model(p, Taxonomy, read_yaml_mapping(p, "a taxonomy"))
