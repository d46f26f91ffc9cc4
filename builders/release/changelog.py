"""What changed between two versions of the dataset, per config, by stable row id.

In: two dataset folders of the same layout (`data/<config>/<split>-*.parquet`): the
release being made and the previous one (a local version folder, or a Hub revision
downloaded with `download_hub_version`). Out: a `Changelog`, per config the ids of rows

- added: the id is new;
- removed: the id is gone;
- changed: same id, different `content_hash` (the text changed) or a different side
  (`split`), e.g. after a template edit or a new prompt;

and the count of unchanged rows; and, from both versions' `split/assignment.parquet`, how
many videos are new on each side and how many old ones changed side. A config without
`content_hash` (failures) is compared by id only. `changelog.json` stores the full id
lists; the card shows the counts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.files import atomic_write_text

DATA_DIR = "data"
ASSIGNMENT = "split/assignment.parquet"


@dataclass
class ConfigChanges:
    """One config's changes against the previous version (ids sorted)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    by_content: bool = True  # False: no content_hash on one side, compared by id only

    @property
    def any(self) -> bool:
        return bool(self.added or self.removed or self.changed)


@dataclass
class Changelog:
    """The changes of `version` against `previous` (None: the first release)."""

    version: str
    previous: str | None
    configs: dict[str, ConfigChanges] = field(default_factory=dict)
    # videos new in this version per side (train / test / held_out), and old videos whose
    # side changed (0 with rules.pin_assignment); None without both assignments
    videos: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Changelog:
        configs = {k: ConfigChanges(**v) for k, v in d["configs"].items()}
        return cls(d["version"], d["previous"], configs, d.get("videos"))

    def write(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")

    def to_markdown(self, max_ids: int = 10) -> str:
        """The card's changelog section body: a table of counts, then a few ids each."""
        if self.previous is None:
            return f"First release ({self.version}): every row is new.\n"
        lines = [
            f"Changes of {self.version} against {self.previous}, by stable row id "
            "(changed: same id, different content or side). Full id lists: "
            "`changelog.json`.\n",
            "| config | added | removed | changed | unchanged |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, c in self.configs.items():
            note = "" if c.by_content else " (by id only)"
            lines.append(
                f"| `{name}`{note} | {len(c.added)} | {len(c.removed)} | {len(c.changed)} "
                f"| {c.unchanged} |"
            )
        lines.append("")
        if self.videos is not None:
            v = self.videos
            lines.append(
                f"New videos: {v['train']} train, {v['test']} test, {v['held_out']} held out "
                f"(in no split); old videos that changed side: {v['moved']}.\n"
            )
        for name, c in self.configs.items():
            for kind in ("added", "removed", "changed"):
                ids = getattr(c, kind)
                if ids:
                    shown = ", ".join(f"`{i}`" for i in ids[:max_ids])
                    more = f" and {len(ids) - max_ids} more" if len(ids) > max_ids else ""
                    lines.append(f"- `{name}` {kind}: {shown}{more}")
        return "\n".join(lines).rstrip() + "\n"


def read_row_keys(folder: Path) -> dict[str, dict[str, tuple[str, str | None]]]:
    """config -> id -> (split, content_hash or None), from every data file of `folder`."""
    import pyarrow.parquet as pq

    from vlm_autodrive.builders.dataset.folder import all_data_files

    out: dict[str, dict[str, tuple[str, str | None]]] = {}
    # The files the folder declares (its provenance.json), whatever they are named:
    # `<split>-<hash>.parquet` now, `<split>-00000-of-00001.parquet` in older releases.
    located = all_data_files(Path(folder))
    for config, split, rel in sorted(
        (c, s, r) for c, files in located.items() for s, r in files.items()
    ):
        path = Path(folder) / rel
        names = pq.read_schema(path).names
        cols = ["id"] + (["content_hash"] if "content_hash" in names else [])
        t = pq.read_table(path, columns=cols)
        ids = t.column("id").to_pylist()
        hashes = (
            t.column("content_hash").to_pylist() if "content_hash" in names else [None] * len(ids)
        )
        rows = out.setdefault(config, {})
        for i, h in zip(ids, hashes):
            rows[i] = (split, h)
    return out


def compare(new: Path, old: Path | None, version: str, previous: str | None) -> Changelog:
    """The changelog of the folder `new` against the folder `old` (None: first release)."""
    new_rows = read_row_keys(new)
    log = Changelog(version, previous)
    if old is None:
        log.configs = {c: ConfigChanges(added=sorted(r)) for c, r in sorted(new_rows.items())}
        return log
    old_rows = read_row_keys(old)
    log.videos = video_changes(new, old)
    for config in sorted(new_rows.keys() | old_rows.keys()):
        a, b = old_rows.get(config, {}), new_rows.get(config, {})
        by_content = all(h is not None for _, h in a.values()) and all(
            h is not None for _, h in b.values()
        )
        common = a.keys() & b.keys()
        changed = (
            sorted(i for i in common if a[i] != b[i])
            if by_content
            else sorted(i for i in common if a[i][0] != b[i][0])
        )
        log.configs[config] = ConfigChanges(
            added=sorted(b.keys() - a.keys()),
            removed=sorted(a.keys() - b.keys()),
            changed=changed,
            unchanged=len(common) - len(changed),
            by_content=by_content,
        )
    return log


def video_sides(folder: Path) -> dict[str, str] | None:
    """video_id -> train / test / held_out from `split/assignment.parquet` (None if absent)."""
    import pyarrow.parquet as pq

    path = Path(folder) / ASSIGNMENT
    if not path.is_file():
        return None
    t = pq.read_table(path, columns=["video_id", "split"])
    out: dict[str, str] = {}
    for v, s in zip(t.column("video_id").to_pylist(), t.column("split").to_pylist()):
        out[v] = "test" if s == "test" or out.get(v) == "test" else s
    return out


def video_changes(new: Path, old: Path) -> dict[str, int] | None:
    """Videos new per side, and old videos on another side (held_out and test count as
    one side: both are the held-out videos)."""
    a, b = video_sides(old), video_sides(new)
    if a is None or b is None:
        return None
    out = dict.fromkeys(("train", "test", "held_out"), 0)
    for v in b.keys() - a.keys():
        out[b[v]] += 1
    out["moved"] = sum(1 for v in a.keys() & b.keys() if (a[v] == "train") != (b[v] == "train"))
    return out


def download_hub_version(repo: str, revision: str, token: str | None) -> Path:
    """The data files of a published version, from the Hub's cache (network).

    Only `data/**/*.parquet` and the assignment are fetched: the changelog needs ids,
    hashes and sides, not clips.
    """
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(
            repo_id=repo,
            repo_type="dataset",
            revision=revision,
            allow_patterns=[f"{DATA_DIR}/*/*.parquet", ASSIGNMENT],
            token=token,
        )
    )
