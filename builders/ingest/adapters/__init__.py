"""Adapters: public annotation formats -> the project manifest schema."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from vlm_autodrive.builders.core.taxonomy import Taxonomy
from vlm_autodrive.builders.ingest.adapters import ccd, dota, mmau, nexar
from vlm_autodrive.builders.ingest.adapters.mapping import (
    AdapterConfig,
    AdapterError,
    AdapterResult,
    load_config,
    write_manifest,
)
from vlm_autodrive.resources import bundled


class Adapter(NamedTuple):
    """One source format: its converter, its config model and its bundled config."""

    convert: Callable[..., AdapterResult]
    config_model: type[AdapterConfig]
    bundled_config: str  # relative to the bundled `recipes` folder


ADAPTERS: dict[str, Adapter] = {
    "nexar": Adapter(nexar.convert, nexar.NexarConfig, "adapters/nexar.yaml"),
    "dota": Adapter(dota.convert, dota.DotaConfig, "adapters/dota.yaml"),
    "ccd": Adapter(ccd.convert, ccd.CcdConfig, "adapters/ccd.yaml"),
    "mmau": Adapter(mmau.convert, mmau.MmauConfig, "adapters/mmau.yaml"),
}


def load_adapter_config(
    name: str, path: str | Path | None = None, taxonomy: Taxonomy | None = None
) -> AdapterConfig:
    """The config of adapter `name`: the YAML at `path`, or the bundled one."""
    adapter = _get(name)
    p = Path(path) if path else bundled("recipes", adapter.bundled_config)
    return load_config(p, adapter.config_model, taxonomy)


def run_adapter(
    name: str,
    source: str | Path,
    config: str | Path | AdapterConfig | None = None,
    video_root: str | Path | None = None,
    taxonomy: Taxonomy | None = None,
) -> AdapterResult:
    """Convert `source` with adapter `name` (config: a model, a YAML path, or bundled)."""
    adapter = _get(name)
    if not isinstance(config, AdapterConfig):
        config = load_adapter_config(name, config, taxonomy)
    elif not isinstance(config, adapter.config_model):
        raise AdapterError(f"a {type(config).__name__} is not a config for adapter {name!r}")
    root = Path(video_root) if video_root is not None else None
    return adapter.convert(Path(source), config, root, taxonomy)


def _get(name: str) -> Adapter:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise AdapterError(f"unknown adapter {name!r}; known: {sorted(ADAPTERS)}") from None


__all__ = [
    "ADAPTERS",
    "Adapter",
    "AdapterConfig",
    "AdapterError",
    "AdapterResult",
    "load_adapter_config",
    "run_adapter",
    "write_manifest",
]
