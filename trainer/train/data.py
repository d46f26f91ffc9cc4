"""The training rows: find the mixture config, load it, and check it before training.

In: the recipe's `dataset:` section. A local folder or a Hub snapshot has the layout
`autodrive mix` / `autodrive publish` write: `data/<config>/<split>-*.parquet`, rows with
a `messages` column (system, user with one video part then the question, assistant), and
clips under the folder, referenced by paths relative to it. Out: the folder (the root the
clip paths are relative to) and a `datasets.Dataset` of the rows.

Everything that can be checked without decoding is checked before training starts, so a
bad recipe or dataset costs seconds, not a GPU allocation: the config and split exist
(the error lists those that do), the revision exists, every row is one conversation with
exactly one video part, and every clip path resolves to a file inside the folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vlm_autodrive.trainer.train.config import DatasetSpec

ROLES = ("system", "user", "assistant")


def resolve_dataset(spec: DatasetSpec, cache_dir: str | None = None) -> tuple[Path, list[Path]]:
    """(dataset root, Parquet files of the config's split). Raises ValueError naming what
    is missing. A Hub dataset is downloaded (its config's Parquet files and `clips/`) into
    the Hugging Face cache, pinned to `spec.revision`."""
    if spec.path is not None:
        root = Path(spec.path)
        if not root.is_dir():
            raise ValueError(f"dataset.path: {root} is not a folder")
        return root, config_files(root, spec.config, spec.split, where=str(root))
    return _hub_snapshot(spec, cache_dir)


def config_files(root: Path, config: str, split: str, where: str) -> list[Path]:
    """The Parquet files of `split` in config `config` under `root`, or a clear error.
    A folder's files are the ones its provenance.json declares when it declares the
    config (a file a rebuild replaced is not read even if it is still there)."""
    from vlm_autodrive.builders.dataset.folder import declared_data_files

    declared = declared_data_files(root, config)
    if declared and split in declared:
        return [root / declared[split]]
    # Undeclared: every `data/<config>/<split>-*` file (a dataset in several shards).
    names = [p.relative_to(root).as_posix() for p in root.glob("data/*/*.parquet")]
    return [root / n for n in pick_files(names, config, split, where)]


def pick_files(names: list[str], config: str, split: str, where: str) -> list[str]:
    """Of a dataset's file names, those of `split` in `config` (`data/<config>/<split>-*`).
    Raises ValueError naming the configs, or the config's splits, that do exist."""
    parquet = [n.split("/") for n in names if n.startswith("data/") and n.endswith(".parquet")]
    parquet = [p for p in parquet if len(p) == 3]
    wanted = sorted("/".join(p) for p in parquet if p[1] == config and p[2].startswith(split + "-"))
    if wanted:
        return wanted
    configs = sorted({p[1] for p in parquet})
    if config not in configs:
        raise ValueError(
            f"dataset.config: no config {config!r} in {where} "
            f"(configs there: {', '.join(configs) or 'none'}); run `autodrive mix` first?"
        )
    splits = sorted({p[2].split("-")[0] for p in parquet if p[1] == config})
    raise ValueError(
        f"dataset.split: config {config!r} in {where} has no split {split!r} "
        f"(splits: {', '.join(splits)})"
    )


def _hub_snapshot(spec: DatasetSpec, cache_dir: str | None) -> tuple[Path, list[Path]]:
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        names = HfApi().list_repo_files(spec.repo, repo_type="dataset", revision=spec.revision)
    except OfflineModeIsEnabled:
        raise ValueError(
            f"dataset.repo: {spec.repo}@{spec.revision}: the Hub is off (HF_HUB_OFFLINE is "
            "set), so its files cannot be listed; run once online, or train from a local "
            "folder with `dataset.path`"
        ) from None
    except RevisionNotFoundError:
        raise ValueError(f"dataset.revision: {spec.revision!r} not found in {spec.repo}") from None
    except RepositoryNotFoundError:
        raise ValueError(
            f"dataset.repo: {spec.repo} not found (or private: log in with `hf auth login`)"
        ) from None
    wanted = pick_files(names, spec.config, spec.split, where=f"{spec.repo}@{spec.revision}")
    # Clips are downloaded whole (the test split's too): one pattern per referenced clip
    # would make the download's file matching quadratic on a 50k-clip dataset.
    root = snapshot_download(
        spec.repo,
        repo_type="dataset",
        revision=spec.revision,
        allow_patterns=[*wanted, "clips/**", "README.md"],
        cache_dir=cache_dir,
    )
    return Path(root), [Path(root) / n for n in wanted]


def load_rows(files: Iterable[Path], cache_dir: str | None = None):
    """The rows of the Parquet files as a memory-mapped `datasets.Dataset`."""
    import datasets

    return datasets.load_dataset(
        "parquet", data_files=[str(f) for f in files], split="train", cache_dir=cache_dir
    )


def video_parts(messages: list[dict[str, Any]]) -> list[str]:
    """The clip paths of a conversation's video parts, in order."""
    return [
        part["video"]
        for m in messages
        if not isinstance(m["content"], str)
        for part in m["content"]
        if part.get("type") == "video"
    ]


def _iter_messages(rows, batch_size: int = 4096):
    """(row id, messages) for every row, read in batches (a mixture has ~350k rows)."""
    has_id = "id" in rows.column_names
    columns = ["id", "messages"] if has_id else ["messages"]
    n = 0
    for batch in rows.select_columns(columns).iter(batch_size=batch_size):
        ids = batch["id"] if has_id else [f"#{n + i}" for i in range(len(batch["messages"]))]
        n += len(ids)
        yield from zip(ids, batch["messages"])


def check_rows(rows, root: Path, show: int = 5) -> int:
    """Check every row before training; return the number of distinct clips.

    Raises ValueError when a row is not a system/user/assistant conversation with exactly
    one video part and an assistant answer, or when clip paths do not resolve to files
    inside `root` (the message names how many and shows the first few).
    """
    if "messages" not in rows.column_names:
        raise ValueError(f"the rows have no `messages` column (columns: {rows.column_names})")
    bad_shape: list[str] = []
    clips: dict[str, str] = {}  # clip path -> first row id using it
    for row_id, messages in _iter_messages(rows):
        roles = [m["role"] for m in messages]
        paths = video_parts(messages)
        if any(r not in ROLES for r in roles) or "assistant" not in roles or len(paths) != 1:
            bad_shape.append(f"{row_id} (roles {roles}, {len(paths)} video parts)")
            continue
        clips.setdefault(paths[0], row_id)
    if bad_shape:
        raise ValueError(
            f"{len(bad_shape)} rows are not a conversation with one video part and an "
            f"assistant answer (this trainer keeps every batch video-only), e.g.: "
            + "; ".join(bad_shape[:show])
        )
    base = root.resolve()
    missing = []
    for rel, row_id in clips.items():
        path = (base / rel).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            missing.append(f"{rel} (row {row_id})")
    if missing:
        raise ValueError(
            f"{len(missing)} of {len(clips)} clip paths do not resolve to files under {root}, "
            f"e.g.: " + "; ".join(missing[:show])
        )
    return len(clips)
