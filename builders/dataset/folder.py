"""The build folder as a Hugging Face dataset: config Parquet files, dataset card, provenance.

In: the tables of one or more configs (split name -> Arrow table), from the stage that
made them, and that stage's provenance. Out, under the build folder:

- `data/<config>/{train,test}-00000-of-00001.parquet` (an empty split of a config with
  rows elsewhere is left out: `datasets` 5.2 loads no split without rows; a config with
  no row at all keeps zero-row files with its schema, so the card declares it and
  `load_dataset(folder, config, streaming=True)` yields its empty splits);
- `provenance.json`: toolkit version, recipe, manifest and input hashes, and per stage
  and config the taxonomy and template hashes, generators, row counts, file hashes;
- `README.md`: the dataset card, whose YAML header declares every config found in
  `provenance.json` with its data files, so `datasets.load_dataset(folder, config)` works.

Stages write their configs through `write_dataset_folder`; the card always describes
every config in the folder, so a later stage (model splits) adds configs without losing
the earlier ones. A stage that streams its Parquet files itself (the mixer) declares
them with `register_config`. The card's text is builders/dataset/card.py's. Nothing here has a
timestamp: a rebuild writes identical bytes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from vlm_autodrive.builders.core.files import (
    atomic_path,
    atomic_write_text,
    file_sha256,
    read_json,
    write_json,
    write_parquet,
)
from vlm_autodrive.builders.dataset.card import COLUMN_DOCS  # noqa: F401  (re-exported: the card's column glossary)

DATA_DIR = "data"
CARD = "README.md"
PROVENANCE = "provenance.json"
SPLITS = ("train", "test")
DEFAULT_CONFIG = "mcq"


@dataclass
class ConfigTables:
    """One config to write: its tables per split and what the card says about it."""

    name: str
    description: str
    generator: str
    template: str
    tables: dict[str, pa.Table]


def write_empty_parquet(schema: pa.Schema, path: Path) -> None:
    """A Parquet file with the schema and no row group (atomically): `datasets` streams it
    as an empty split, while a file with one empty row group makes it fail."""
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.ParquetWriter(tmp, schema).close()


def data_files(name: str) -> dict[str, str]:
    """split -> Parquet path relative to the build folder."""
    return {s: f"{DATA_DIR}/{name}/{s}-00000-of-00001.parquet" for s in SPLITS}


def write_dataset_folder(
    build_dir: Path,
    configs: Iterable[ConfigTables],
    *,
    stage: str,
    stage_info: Mapping[str, Any],
    top: Mapping[str, Any],
    drop: Iterable[str] = (),
) -> dict[str, Any]:
    """Write the configs' Parquet files, update provenance.json, rewrite README.md.

    `stage_info` goes to `provenance.stages[stage]`; `top` updates the top level
    (toolkit, recipe, manifest). Configs named in `drop` (made by this stage earlier but
    not now) are deleted, so the folder never serves stale rows. Returns the provenance.
    """

    prov_path = build_dir / PROVENANCE
    prov: dict[str, Any] = read_json(prov_path) if prov_path.exists() else {}
    prov.update(top)
    prov.setdefault("stages", {})[stage] = dict(stage_info)
    entries = prov.setdefault("configs", {})
    for name in drop:
        shutil.rmtree(build_dir / DATA_DIR / name, ignore_errors=True)
        entries.pop(name, None)
    for cfg in configs:
        splits = {}
        given = {s: t for s, t in cfg.tables.items() if t is not None}
        # An empty split of a config with rows elsewhere (test_per_class: 0) is left out:
        # `datasets` 5.2 refuses to load a split without rows ("corresponds to no data").
        # A config without any row keeps its splits as zero-row files with the schema,
        # so the card still declares it (loadable with streaming=True).
        all_empty = bool(given) and all(t.num_rows == 0 for t in given.values())
        for split, rel in data_files(cfg.name).items():
            table = given.get(split)
            path = build_dir / rel
            if table is None or (table.num_rows == 0 and not all_empty):
                path.unlink(missing_ok=True)
                continue
            if table.num_rows:
                write_parquet(table, path)
            else:
                write_empty_parquet(table.schema, path)
            splits[split] = {"path": rel, "rows": table.num_rows, "sha256": file_sha256(path)}
        if not splits:
            shutil.rmtree(build_dir / DATA_DIR / cfg.name, ignore_errors=True)
            entries.pop(cfg.name, None)
            continue
        entries[cfg.name] = {
            "stage": stage,
            "description": cfg.description,
            "generator": cfg.generator,
            "template": cfg.template,
            "splits": splits,
        }
    return _save(build_dir, prov)


def register_config(
    build_dir: Path,
    name: str,
    *,
    description: str,
    generator: str,
    template: str,
    stage: str,
    stage_info: Mapping[str, Any],
) -> dict[str, Any]:
    """Declare a config whose Parquet files its stage wrote itself, at `data_files(name)`
    (a mixture, streamed batch by batch rather than held as one table).

    The files that exist are recorded in provenance.json with their rows and hashes,
    `stage_info` goes to `provenance.stages[stage]`, and the card is rewritten. A config
    with no file left is undeclared. Returns the provenance.
    """
    import pyarrow.parquet as pq

    prov_path = build_dir / PROVENANCE
    prov: dict[str, Any] = read_json(prov_path) if prov_path.exists() else {}
    prov.setdefault("stages", {})[stage] = dict(stage_info)
    entries = prov.setdefault("configs", {})
    splits = {}
    for split, rel in data_files(name).items():
        path = build_dir / rel
        if path.exists():
            rows = pq.ParquetFile(path).metadata.num_rows
            splits[split] = {"path": rel, "rows": rows, "sha256": file_sha256(path)}
    entries.pop(name, None)
    if splits:
        entries[name] = {
            "stage": stage,
            "description": description,
            "generator": generator,
            "template": template,
            "splits": splits,
        }
    return _save(build_dir, prov)


def _save(build_dir: Path, prov: dict[str, Any]) -> dict[str, Any]:
    """Drop configs whose files are gone, write provenance.json, rewrite the card."""
    entries = prov.setdefault("configs", {})
    # A config whose files someone deleted is not declared (load_dataset would fail).
    for name in [n for n in entries if not (build_dir / DATA_DIR / n).is_dir()]:
        entries.pop(name)
    prov["configs"] = dict(sorted(entries.items()))
    write_json(build_dir / PROVENANCE, prov)
    atomic_write_text(build_dir / CARD, render_card(build_dir, prov))
    return prov


def render_card(build_dir: Path, prov: Mapping[str, Any]) -> str:
    """The dataset card of the folder (builders/dataset/card.py renders it)."""
    from vlm_autodrive.builders.dataset.card import render_card as _render

    return _render(build_dir, prov)
