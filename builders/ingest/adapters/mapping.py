"""What every adapter shares: the config model, label/value mapping, and the result.

An adapter config (a YAML under `recipes/adapters/`) says explicitly how a source
dataset's labels and metadata values become the project's classes and vocabulary
words. `load_config` validates it against the taxonomy; a bad key fails naming its
dotted key path. `ResultBuilder` collects what an adapter produces row by row:
manifest entries, rejects (line + reason) and counts, so that every source row read is
accounted for: rows = entries + dropped + rejected. `write_manifest` writes the entries
as a JSONL manifest.
"""

from __future__ import annotations

import dataclasses
import os
import string
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, ValidationError

from vlm_autodrive.builders.core.files import atomic_path
from vlm_autodrive.builders.core.stage import RejectRecord
from vlm_autodrive.builders.core.strict import Strict, read_yaml_mapping, validate_model
from vlm_autodrive.builders.core.taxonomy import Taxonomy, load_taxonomy
from vlm_autodrive.builders.ingest.records import Actor, ManifestEntry, VideoMetadata

DROP = "drop"
"""Label-mapping target meaning: skip rows of this source label on purpose."""

MetaField = Literal["weather", "light", "road", "scene", "blame", "evasive_action"]


class AdapterError(ValueError):
    """The whole conversion must stop (bad config, unreadable source, `unmapped: error`)."""


class RowError(ValueError):
    """One source row cannot be used; it becomes a reject with this message."""


class AdapterConfig(Strict):
    """Keys every adapter YAML has (each adapter module adds its own)."""

    adapter: str = Field(description="the adapter this file configures (checked)")
    source: str | None = Field(None, description="`source` of every entry; default: adapter")
    id_prefix: str = Field("", description="prepended to every video_id (merging datasets)")
    labels: dict[str, str] = Field(description="source label -> project class or `drop`")
    label_prefixes: dict[str, str] = Field(
        default_factory=dict, description="source label prefix -> class or `drop`"
    )
    unmapped: Literal["reject", "error"] = "reject"
    values: dict[MetaField, dict[str, str | None]] = Field(default_factory=dict)
    unmapped_values: Literal["keep", "null", "reject"] = "reject"

    def map_label(self, raw: str) -> str | None:
        """The project class for a source label, DROP, or None if no rule covers it.

        Exact entries win; otherwise the longest matching prefix rule.
        """
        if raw in self.labels:
            return self.labels[raw]
        hits = [p for p in self.label_prefixes if raw.startswith(p)]
        return self.label_prefixes[max(hits, key=len)] if hits else None

    def problems(self, taxonomy: Taxonomy) -> list[str]:
        """`key.path: message` for every mapping target the taxonomy does not know."""
        out = []
        allowed = [*taxonomy.names, DROP]
        for section in ("labels", "label_prefixes"):
            for key, target in getattr(self, section).items():
                if target not in allowed:
                    out.append(f"{section}.{key}: {target!r} is not one of {allowed}")
        for fld, table in self.values.items():
            vocab = taxonomy.vocab.get(fld)
            for key, target in table.items():
                if target is not None and vocab is not None and target not in vocab:
                    out.append(f"values.{fld}.{key}: {target!r} is not in vocab.{fld} {vocab}")
        return out


class FrameConfig(AdapterConfig):
    """Adapters whose sources give frame indices: seconds = index / fps."""

    fps: float = Field(gt=0, description="frame rate the indices count at")
    event_time: Literal["onset", "middle"] = "onset"
    path_template: str = Field(description="video path relative to video_root")


C = TypeVar("C", bound=AdapterConfig)


def check_template(template: str, allowed: set[str]) -> str:
    """Validate a `str.format` path template: only the `allowed` field names."""
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as e:
        raise ValueError(f"bad template {template!r}: {e}") from None
    if not names <= allowed or "" in names:
        raise ValueError(f"template {template!r} may use only {sorted(allowed)}")
    return template


def render_path(template: str, video_root: Path | None, **fields: str) -> str:
    """A video path: the rendered template, under `video_root` when one is given."""
    rel = template.format(**fields)
    return str(video_root / rel) if video_root is not None else rel


def load_config(path: str | Path, model: type[C], taxonomy: Taxonomy | None = None) -> C:
    """Load an adapter YAML into `model`; ValueError naming the file and key path."""
    config = validate_model(path, model, read_yaml_mapping(path, "an adapter config"))
    bad = config.problems(taxonomy or load_taxonomy())
    if bad:
        raise ValueError("\n".join(f"{path}: {b}" for b in bad))
    return config


def frame_seconds(first: int, last: int, fps: float, mode: str) -> tuple[float, float, float]:
    """(event_start, event_time, event_end) in seconds for frame indices first..last."""
    start, end = first / fps, last / fps
    moment = start if mode == "onset" else (first + last) / 2 / fps
    return start, moment, end


@dataclasses.dataclass
class AdapterResult:
    """What an adapter produced from its source rows.

    Every row read is an entry, a drop (counted per source label in `dropped`) or a
    reject (with its reason): `rows == len(entries) + sum(dropped.values()) + len(rejects)`.
    `unmapped_values` counts metadata values kept or nulled because `values` has no entry
    for them (not rejects); `notes` counts other facts worth a line (files read, ...).
    `paths_from`: the folder the entries' relative paths are relative to, when it is not
    the manifest's (Nexar's paths name files below the folder it was given, relative to
    the working folder); None: relative paths are relative to the manifest's folder.
    """

    entries: list[ManifestEntry]
    rejects: list[RejectRecord]
    rows: int = 0
    dropped: Counter[str] = dataclasses.field(default_factory=Counter)
    unmapped_values: Counter[str] = dataclasses.field(default_factory=Counter)
    notes: Counter[str] = dataclasses.field(default_factory=Counter)
    paths_from: Path | None = None

    def counts(self) -> dict[str, int]:
        """Entries per project class, by class name."""
        return dict(sorted(Counter(e.label for e in self.entries).items()))

    def accounted(self) -> bool:
        """True when every row read is an entry, a drop or a reject."""
        return self.rows == len(self.entries) + sum(self.dropped.values()) + len(self.rejects)

    def summary(self) -> str:
        """One paragraph for the CLI: rows read = kept per class + dropped + rejected."""
        parts = [
            f"{self.rows} rows = {len(self.entries)} entries {self.counts()}"
            f" + {sum(self.dropped.values())} dropped {_sorted(self.dropped)}"
            f" + {len(self.rejects)} rejected"
        ]
        if self.unmapped_values:
            unmapped = _sorted(self.unmapped_values)
            parts.append(f"unmapped metadata values (kept or nulled) {unmapped}")
        if self.notes:
            parts.append(f"notes {_sorted(self.notes)}")
        return "; ".join(parts)


def _sorted(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items()))


class ResultBuilder:
    """Collects entries and rejects while an adapter walks its source rows."""

    def __init__(self, config: AdapterConfig, source: Path, taxonomy: Taxonomy | None):
        self.config = config
        self.source = source
        self.taxonomy = taxonomy or load_taxonomy()
        bad = config.problems(self.taxonomy)
        if bad:
            raise AdapterError("; ".join(bad))
        self.result = AdapterResult(entries=[], rejects=[])
        self._seen: dict[str, str] = {}

    def reject(
        self, line: int | None, video_id: str | None, reason: str, source: Path | None = None
    ) -> None:
        """Record one unusable row (`source`: the file it is in, default the adapter's)."""
        where = str(source or self.source)
        self.result.rejects.append(RejectRecord("adapt", where, line, video_id, reason))

    def finish(self) -> AdapterResult:
        """The result, after checking that every row read was accounted for."""
        assert self.result.accounted(), f"adapter lost or double-counted rows: {self.result}"
        return self.result

    def label(self, raw: str, line: int) -> str | None:
        """The project class for `raw`, or None when the mapping says `drop`.

        Raises RowError (reject; the adapter's reject names the line) or AdapterError
        (`unmapped: error`, naming the file and line) when no rule covers it.
        """
        target = self.config.map_label(raw)
        if target is None:
            msg = f"source label {raw!r} is not in the label mapping"
            if self.config.unmapped == "error":
                raise AdapterError(f"{self.source}: line {line}: {msg}")
            raise RowError(msg)
        if target == DROP:
            self.result.dropped[raw] += 1
            return None
        return target

    def value(self, fld: MetaField, raw: str | None) -> str | None:
        """A metadata value through `values.<fld>`; empty stays None."""
        raw = (raw or "").strip()
        if not raw:
            return None
        table = self.config.values.get(fld, {})
        if raw in table:
            return table[raw]
        if self.config.unmapped_values == "reject":
            raise RowError(f"{fld} value {raw!r} is not in values.{fld}")
        self.result.unmapped_values[f"{fld}={raw}"] += 1
        return raw if self.config.unmapped_values == "keep" else None

    def add(
        self,
        line: int,
        video_id: str,
        path: str,
        label: str,
        times: tuple[float, float, float] | None,
        source_class: str,
        actors: Iterable[Actor] = (),
        where: str | None = None,
        **meta: Any,
    ) -> None:
        """Validate and keep one entry (`where`: the row's place, for duplicate messages).

        An event class needs event times and the background class must have none: a
        row that breaks this is a RowError, never an entry with times dropped or made up.
        """
        video_id = self.config.id_prefix + video_id
        if video_id in self._seen:
            raise RowError(f"duplicate video_id {video_id!r} (first on {self._seen[video_id]})")
        event = self.taxonomy.is_event(label)
        if event and times is None:
            raise RowError(f"class {label!r} is an event class but the row has no event time")
        if not event and times is not None:
            raise RowError(f"class {label!r} is not an event class but the row has an event time")
        start, moment, end = times if times else (None, None, None)
        try:
            entry = ManifestEntry(
                video_id=video_id,
                path=path,
                label=label,
                event_start=start,
                event_time=moment,
                event_end=end,
                source=self.config.source or self.config.adapter,
                metadata=VideoMetadata(
                    actors=[a.model_copy() for a in actors], source_class=source_class, **meta
                ),
            )
        except ValidationError as e:
            raise RowError("; ".join(err["msg"] for err in e.errors())) from None
        self._seen[video_id] = where or f"line {line}"
        self.result.entries.append(entry)


def write_manifest(
    entries: Iterable[ManifestEntry], path: str | Path, paths_from: Path | None = None
) -> int:
    """Write entries as a JSONL manifest (one ManifestEntry per line), atomically.

    `paths_from` (an AdapterResult's): the folder relative video paths are relative to;
    they are written relative to the manifest's folder instead, where ingest resolves
    them (`adapt nexar data/nexar --out sub/dir/m.jsonl` writes `../../data/nexar/...`).
    Absolute paths are written as they are. Returns the number of lines written.
    """
    path = Path(path)
    folder = path.parent.resolve()
    n = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for e in entries:
            if paths_from is not None and not Path(e.path).is_absolute():
                rel = os.path.relpath(Path(paths_from) / e.path, folder)
                e = e.model_copy(update={"path": Path(rel).as_posix()})
            f.write(e.model_dump_json() + "\n")
            n += 1
    return n
