"""The evaluation's input: the MCQ test rows of a dataset folder or a Hub dataset.

In: a dataset spec, either a local folder written by `autodrive build` / publish (the
`data/<config>/<split>-*.parquet` layout with clips under the folder) or a Hub dataset
`owner/name[@revision]`, and the config and split. Out: an `EvalData` with the rows as
dicts and the folder their `video` paths are relative to. A Hub dataset is downloaded
with `huggingface_hub`: the split's Parquet first, then only the clips of the rows that
will be evaluated. `eval_taxonomy` gives the label set the dataset was built with.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vlm_autodrive.builders.core.taxonomy import Taxonomy

REQUIRED = ("clip_id", "label", "video", "question", "options", "answer_letter")
_HUB_SPEC = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")


@dataclass
class EvalData:
    """Rows of one config and split, and where their clips are.

    `source` is the spec as given; `revision` the Hub commit it resolved to (None for a
    folder); `hub_repo` is set for Hub datasets so `ensure_videos` can fetch clips.
    """

    source: str
    root: Path
    config: str
    split: str
    rows: list[dict[str, Any]]
    revision: str | None = None
    hub_repo: str | None = field(default=None, repr=False)

    def video_path(self, row: Mapping[str, Any]) -> Path:
        return (self.root / row["video"]).resolve()

    def ensure_videos(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Make sure the clips of `rows` are on disk (downloading them for a Hub dataset).

        Raises FileNotFoundError naming the first missing clips.
        """
        if self.hub_repo:
            from huggingface_hub import snapshot_download

            snapshot_download(
                self.hub_repo,
                repo_type="dataset",
                revision=self.revision,
                allow_patterns=sorted({r["video"] for r in rows}),
            )
        missing = [r["video"] for r in rows if not self.video_path(r).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} clip(s) missing under {self.root}, e.g. {missing[:3]}"
            )


def open_dataset(spec: str, config: str = "mcq", split: str = "test") -> EvalData:
    """Read the rows of `config`/`split` from a folder or a Hub dataset `owner/name[@rev]`."""
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{spec}: a dataset is a folder (or a Hub id owner/name[@rev])")
        return EvalData(spec, path.resolve(), config, split, _read_rows(path, config, split))
    m = _HUB_SPEC.match(spec)
    if not m:
        raise FileNotFoundError(f"{spec}: no such folder, and not a Hub id owner/name[@rev]")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    pattern = f"data/{config}/{split}-*.parquet"
    try:
        root = Path(
            snapshot_download(
                m["repo"],
                repo_type="dataset",
                revision=m["rev"],
                allow_patterns=[pattern, "README.md", "provenance.json"],
            )
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise ValueError(
            f"command line: --dataset: {spec}: not in the local Hugging Face cache, and the "
            "Hub cannot be reached (offline: HF_HUB_OFFLINE is set, or no network); run once "
            "online, or give a local folder (a build or `autodrive publish --to` release)"
        ) from None
    # The snapshot folder is named by the commit, which pins what was evaluated.
    return EvalData(
        spec,
        root,
        config,
        split,
        _read_rows(root, config, split),
        revision=root.name,
        hub_repo=m["repo"],
    )


def _read_rows(root: Path, config: str, split: str) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vlm_autodrive.builders.dataset.folder import declared_data_files

    # The file the folder declares (a file a rebuild replaced is never read); else every
    # `<split>-*` file (a dataset in several shards).
    declared = (declared_data_files(root, config) or {}).get(split)
    files = (
        [root / declared]
        if declared
        else sorted((root / "data" / config).glob(f"{split}-*.parquet"))
    )
    if not files:
        have = sorted(p.name for p in (root / "data").glob("*") if p.is_dir())
        raise FileNotFoundError(
            f"{root}: no data/{config}/{split}-*.parquet (configs here: {have or 'none'})"
        )
    table = pa.concat_tables([pq.read_table(f) for f in files])
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise ValueError(
            f"config {config!r} lacks {missing}: evaluation needs a multiple-choice config "
            "such as `mcq`"
        )
    return table.to_pylist()


def balanced_subset(
    rows: Sequence[Mapping[str, Any]], classes: Sequence[str], limit: int | None
) -> list[dict[str, Any]]:
    """All rows, or the first `limit` of a class-balanced order.

    The order takes one clip of each class in turn (classes in display order, clips by
    id within a class), so `--limit 30` on a 3-class test split evaluates 10 per class.
    """
    ordered = sorted(rows, key=lambda r: r["clip_id"])
    if limit is None or limit >= len(ordered):
        return [dict(r) for r in ordered]
    if limit <= 0:
        raise ValueError("--limit must be positive")
    by_class = {c: [r for r in ordered if r["label"] == c] for c in classes}
    picked: list[dict[str, Any]] = []
    i = 0
    while len(picked) < limit and i < len(ordered):
        for c in classes:
            if i < len(by_class[c]) and len(picked) < limit:
                picked.append(dict(by_class[c][i]))
        i += 1
    return sorted(picked, key=lambda r: r["clip_id"])


def clips_hash(rows: Sequence[Mapping[str, Any]]) -> str:
    """A hash of the evaluated (clip, gold label, options) set: equal hashes mean two
    reports were measured on the same questions."""
    h = hashlib.sha256()
    for r in sorted(rows, key=lambda r: r["clip_id"]):
        h.update(f"{r['clip_id']}\x1f{r['label']}\x1f{'|'.join(r['options'])}\n".encode())
    return h.hexdigest()


def eval_taxonomy(path: Path | None, root: Path) -> tuple[Taxonomy, str]:
    """The label set to score with, and where it came from: `--taxonomy` when given;
    else the one the dataset was built with (its `provenance.json`, so a build with a
    new class is scored on its own classes); else the bundled one."""
    from vlm_autodrive.builders.core.taxonomy import load_taxonomy, taxonomy_from_provenance

    if path:
        return load_taxonomy(path), f"--taxonomy {path}"
    prov_path = Path(root) / "provenance.json"
    if prov_path.is_file():
        try:
            prov = json.loads(prov_path.read_text())
        except ValueError as e:
            raise ValueError(f"{prov_path}: not valid JSON ({e}); pass --taxonomy") from None
        recorded = taxonomy_from_provenance(prov)
        if recorded is not None:
            return recorded, "the dataset's provenance.json"
    return load_taxonomy(None), "bundled templates/taxonomy.yaml"
