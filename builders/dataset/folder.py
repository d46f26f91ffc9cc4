"""The build folder as a Hugging Face dataset: config Parquet files, dataset card, provenance.

In: the tables of one or more configs (split name -> Arrow table), from the stage that
made them, and that stage's provenance. Out, under the build folder:

- `data/<config>/<split>-<hash>.parquet`, `<hash>` the first 16 hex digits of the file's
  sha256 (an empty split of a config with rows elsewhere is left out: `datasets` 5.2
  loads no split without rows; a config with no row at all keeps zero-row files with its
  schema, which `load_dataset(folder, config, data_files=...)` can stream, but the card
  lists it in its text only: every config it declares loads with a plain `load_dataset`);
- `provenance.json`: toolkit version, recipe, manifest and input hashes, and per stage
  and config the taxonomy and template hashes, generators, row counts, file paths and
  hashes;
- `README.md`: the dataset card, whose YAML header declares every config found in
  `provenance.json` with its data files, so `datasets.load_dataset(folder, config)` works.

Why files are named by content: `datasets` keys its cache of a local folder on the
folder's name and the card's `configs:` data-file patterns, not on the files' bytes or
times. A fixed name (`train-00000-of-00001.parquet`) gave the old rows back after a
rebuild, and another folder of the same name gave that folder's rows. With the hash in
the name (as the Hub's converted datasets do), the declared paths, hence the cache key,
change exactly when the content does. A new file is written first, then provenance.json
and the card point at it, then the config's other files are removed: a killed run
leaves a folder whose card declares files that exist. `data_files(build, config)` is how
every reader finds a config's files (from provenance.json, else from the folder).

Stages write their configs through `write_dataset_folder`; the card always describes
every config in the folder, so a later stage (model splits) adds configs without losing
the earlier ones. A stage that streams its Parquet files itself (the mixer) stores each
with `store_data_file` and declares them with `register_config`. The card's text is
builders/dataset/card.py's. Nothing here has a timestamp: a rebuild writes identical
bytes, and a file, the card or provenance.json whose bytes would not change is not
rewritten (its modification time stays).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from vlm_autodrive.builders.core.files import (
    file_sha256,
    memoized_sha256,
    read_json,
    remember_sha256,
    write_json_if_changed,
    write_text_if_changed,
)
from vlm_autodrive.builders.dataset.card import COLUMN_DOCS  # noqa: F401  (re-exported: the card's column glossary)

DATA_DIR = "data"
CARD = "README.md"
PROVENANCE = "provenance.json"
SPLITS = ("train", "test")
DEFAULT_CONFIG = "mcq"
NAME_HASH_CHARS = 16  # hex digits of the sha256 in a data file's name


@dataclass
class ConfigTables:
    """One config to write: its tables per split and what the card says about it."""

    name: str
    description: str
    generator: str
    template: str
    tables: dict[str, pa.Table]


def data_file_rel(config: str, split: str, sha256: str) -> str:
    """The path, relative to the build folder, of a data file with that content."""
    return f"{DATA_DIR}/{config}/{split}-{sha256[:NAME_HASH_CHARS]}.parquet"


def split_of(file_name: str) -> str:
    """The split a data file's name names (`train-1a2b....parquet` -> `train`)."""
    return file_name.split("-", 1)[0]


def declared_data_files(build_dir: Path, config: str) -> dict[str, str] | None:
    """split -> path relative to `build_dir` of the config's data files as provenance.json
    declares them (what the card declares); None when it does not declare the config."""
    prov_path = Path(build_dir) / PROVENANCE
    if not prov_path.is_file():
        return None
    try:
        entry = read_json(prov_path).get("configs", {}).get(config)
    except (OSError, ValueError, AttributeError):
        return None
    if not entry:
        return None
    return {s: v["path"] for s, v in entry.get("splits", {}).items()}


def data_files(build_dir: Path, config: str, split: str | None = None) -> dict[str, str]:
    """split -> path relative to `build_dir` of the config's current data files (only
    `split`'s when given).

    The paths provenance.json declares when it names the config; else the folder's
    `data/<config>/<split>-*.parquet` (a release downloaded without provenance, a folder
    made by hand), one per split. {} when the config has none. Raises ValueError when an
    undeclared config has two files for one split.
    """
    found = _data_files(Path(build_dir), config)
    return found if split is None else {s: f for s, f in found.items() if s == split}


def _data_files(build_dir: Path, config: str) -> dict[str, str]:
    declared = declared_data_files(build_dir, config)
    if declared is not None:
        return declared
    found: dict[str, list[str]] = {}
    for path in sorted((build_dir / DATA_DIR / config).glob("*.parquet")):
        found.setdefault(split_of(path.name), []).append(path.relative_to(build_dir).as_posix())
    ambiguous = {s: f for s, f in found.items() if len(f) > 1}
    if ambiguous:
        raise ValueError(
            f"{build_dir / DATA_DIR / config}: several files for one split and no "
            f"{PROVENANCE} to say which is current: {ambiguous}"
        )
    return {s: f[0] for s, f in sorted(found.items())}


def all_data_files(build_dir: Path) -> dict[str, dict[str, str]]:
    """config -> split -> path relative to `build_dir`, for every config of the folder:
    those provenance.json declares, else every `data/<config>/` folder's (`data_files`)."""
    build_dir = Path(build_dir)
    prov_path = build_dir / PROVENANCE
    if prov_path.is_file():
        try:
            configs = read_json(prov_path).get("configs")
        except ValueError:
            configs = None
        if configs:
            return {c: {s: v["path"] for s, v in e["splits"].items()} for c, e in configs.items()}
    folders = sorted(p.name for p in (build_dir / DATA_DIR).glob("*") if p.is_dir())
    return {c: f for c in folders if (f := data_files(build_dir, c))}


def data_path(build_dir: Path, config: str, split: str) -> Path:
    """The data file of `config`/`split` in `build_dir`; FileNotFoundError naming what the
    folder has when there is none."""
    rel = data_files(build_dir, config, split).get(split)
    if rel is None:
        have = data_files(build_dir, config)
        raise FileNotFoundError(
            f"{build_dir}: no {split} data file of config {config!r} "
            f"(its files: {sorted(have.values()) or 'none'})"
        )
    return Path(build_dir) / rel


def store_data_file(build_dir: Path, config: str, split: str, written: Path) -> str:
    """Move the finished Parquet file `written` (a temporary file in the build folder's
    filesystem) to its content-named place; returns that path relative to `build_dir`.
    When a file of that name already holds these bytes it is kept as it is (same
    modification time) and `written` is removed; one altered since is replaced."""
    sha = file_sha256(written)
    rel = data_file_rel(config, split, sha)
    dest = Path(build_dir) / rel
    if (
        dest.is_file()
        and dest.stat().st_size == written.stat().st_size
        and file_sha256(dest) == sha
    ):
        written.unlink()
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(written, dest)
    remember_sha256(dest, sha)
    return rel


def write_data_file(build_dir: Path, config: str, split: str, table: pa.Table) -> str:
    """Write `table` as the config's `split` file, named by its content (a table without
    rows as a file without row groups); returns its path relative to `build_dir`."""
    import pyarrow.parquet as pq

    tmp = Path(build_dir) / DATA_DIR / config / f".{split}.{os.getpid()}.parquet.tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        if table.num_rows:
            pq.write_table(table, tmp)
        else:
            pq.ParquetWriter(tmp, table.schema).close()
        return store_data_file(build_dir, config, split, tmp)
    finally:
        tmp.unlink(missing_ok=True)


def prune_data_files(build_dir: Path, config: str, keep: Iterable[str]) -> list[str]:
    """Remove the config's Parquet files other than `keep` (paths relative to the build
    folder): the old-named ones a rebuild replaced. Returns what it removed."""
    keep = set(keep)
    removed = []
    for path in sorted((Path(build_dir) / DATA_DIR / config).glob("*.parquet")):
        rel = path.relative_to(build_dir).as_posix()
        if rel not in keep:
            path.unlink()
            removed.append(rel)
    return removed


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
    gone = list(drop)  # configs whose folders go once the card no longer declares them
    for name in gone:
        entries.pop(name, None)
    kept: dict[str, list[str]] = {}
    for cfg in configs:
        splits = {}
        given = {s: t for s, t in cfg.tables.items() if t is not None}
        # An empty split of a config with rows elsewhere (test_per_class: 0) is left out:
        # `datasets` 5.2 refuses to load a split without rows ("corresponds to no data").
        # A config without any row keeps its splits as zero-row files with the schema;
        # the card lists it but does not declare it (card.declared_sides).
        all_empty = bool(given) and all(t.num_rows == 0 for t in given.values())
        for split in SPLITS:
            table = given.get(split)
            if table is None or (table.num_rows == 0 and not all_empty):
                continue
            rel = write_data_file(build_dir, cfg.name, split, table)
            splits[split] = {
                "path": rel,
                "rows": table.num_rows,
                "sha256": memoized_sha256(build_dir / rel),
            }
        if not splits:
            entries.pop(cfg.name, None)
            gone.append(cfg.name)
            continue
        kept[cfg.name] = [v["path"] for v in splits.values()]
        entries[cfg.name] = {
            "stage": stage,
            "description": cfg.description,
            "generator": cfg.generator,
            "template": cfg.template,
            "splits": splits,
        }
    prov = _save(build_dir, prov)
    # Only now that the card points at the new files do the old ones go.
    for name, rels in kept.items():
        prune_data_files(build_dir, name, rels)
    for name in gone:
        shutil.rmtree(build_dir / DATA_DIR / name, ignore_errors=True)
    return prov


def register_config(
    build_dir: Path,
    name: str,
    *,
    files: Mapping[str, str],
    description: str,
    generator: str,
    template: str,
    stage: str,
    stage_info: Mapping[str, Any],
) -> dict[str, Any]:
    """Declare a config whose Parquet files its stage wrote itself (`files`: split ->
    path relative to the build folder, from `store_data_file`; a mixture, streamed batch
    by batch rather than held as one table).

    The files are recorded in provenance.json with their rows and hashes, `stage_info`
    goes to `provenance.stages[stage]`, the card is rewritten (when its text changes),
    then the config's other files are removed. A config without files is undeclared and
    its folder removed. Returns the provenance.
    """
    import pyarrow.parquet as pq

    prov_path = build_dir / PROVENANCE
    prov: dict[str, Any] = read_json(prov_path) if prov_path.exists() else {}
    prov.setdefault("stages", {})[stage] = dict(stage_info)
    entries = prov.setdefault("configs", {})
    splits = {}
    for split, rel in sorted(files.items(), key=lambda kv: SPLITS.index(kv[0])):
        path = build_dir / rel
        rows = pq.ParquetFile(path).metadata.num_rows
        splits[split] = {"path": rel, "rows": rows, "sha256": memoized_sha256(path)}
    entries.pop(name, None)
    if splits:
        entries[name] = {
            "stage": stage,
            "description": description,
            "generator": generator,
            "template": template,
            "splits": splits,
        }
    prov = _save(build_dir, prov)
    if splits:
        prune_data_files(build_dir, name, [v["path"] for v in splits.values()])
    else:
        shutil.rmtree(build_dir / DATA_DIR / name, ignore_errors=True)
    return prov


def _save(build_dir: Path, prov: dict[str, Any]) -> dict[str, Any]:
    """Drop configs whose files are gone, write provenance.json, rewrite the card."""
    entries = prov.setdefault("configs", {})
    # A config whose files someone deleted is not declared (load_dataset would fail).
    for name in [n for n in entries if not (build_dir / DATA_DIR / n).is_dir()]:
        entries.pop(name)
    prov["configs"] = dict(sorted(entries.items()))
    write_json_if_changed(build_dir / PROVENANCE, prov)
    write_text_if_changed(build_dir / CARD, render_card(build_dir, prov))
    return prov


def render_card(build_dir: Path, prov: Mapping[str, Any]) -> str:
    """The dataset card of the folder (builders/dataset/card.py renders it)."""
    from vlm_autodrive.builders.dataset.card import render_card as _render

    return _render(build_dir, prov)
