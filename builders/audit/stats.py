"""Statistics of a build: per config, side and class; the generation yield; the videos.

In: the build folder. Out: `ConfigStats` (rows, token lengths, answer-letter counts,
distinct-1/2), `YieldRow` (the model splits' samples, kept and failures by kind and
reason, per class: the stage's report in `model_splits/stamp.json` and
`provenance.json`, and the `failures` config) and `VideoStats` (videos, clips, hours,
clips per source, per side and class).

Tokens are counted with the `tokenizers` package and the `tokenizer.json` of the
recipe's model folder when the recipe names a local one (the text model first), else as
whitespace-separated words; `token_counter` says which.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from vlm_autodrive.builders.audit.records import ConfigStats, VideoStats, YieldRow
from vlm_autodrive.builders.core.files import read_json
from vlm_autodrive.builders.dataset.folder import PROVENANCE, all_data_files

SKIP_CONFIGS = ("failures",)
TEXT_COLUMNS = ("question", "answer", "reasoning", "answer_letter")
DISTINCT_SAMPLE = 1000  # texts per group for distinct-1/2 (see distinct_ngrams)


def token_counter(build_dir: Path) -> tuple[Callable[[list[str]], list[int]], str]:
    """A function counting the tokens of each text, and the words saying how."""
    for folder in _model_folders(build_dir):
        try:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
            tok.encode("The car ahead brakes: A. Collision, 12.5 s?", add_special_tokens=False)
        except Exception:  # a file this tokenizers cannot read or use: the next, else words
            continue

        def count(texts: list[str], tok=tok) -> list[int]:
            try:
                return [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]
            except Exception:  # a text it cannot encode (no unknown token): words, not a stop
                return [len(t.split()) for t in texts]

        return count, f"tokens of {folder.name}'s tokenizer.json"
    return (lambda texts: [len(t.split()) for t in texts]), "whitespace-separated words"


def _model_folders(build_dir: Path) -> list[Path]:
    """Local model folders with a tokenizer.json the build's recipe names, text first."""
    try:
        prov = read_json(build_dir / PROVENANCE)
    except (OSError, ValueError):
        return []
    models = ((prov.get("recipe") or {}).get("generate") or {}).get("models") or {}
    names = sorted(models, key=lambda n: (n != "text", n))
    out = []
    for n in names:
        m = models[n].get("model") if isinstance(models[n], dict) else None
        if m and (Path(m) / "tokenizer.json").is_file():
            out.append(Path(m))
    return out


def read_config_rows(build_dir: Path, files: dict[str, str]) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows = []
    for rel in files.values():
        path = build_dir / rel
        names = set(pq.read_schema(path).names)
        cols = [c for c in ("id", "video_id", "label", "split", *TEXT_COLUMNS) if c in names]
        rows += pq.read_table(path, columns=cols).to_pylist()
    return sorted(rows, key=lambda r: (r.get("split") or "", r.get("id") or ""))


def config_stats(
    config: str, rows: list[dict[str, Any]], count: Callable[[list[str]], list[int]]
) -> list[ConfigStats]:
    """Per side (and `all`) and class (and `all`) of one config's rows."""
    if not rows:
        return []
    q_tokens = np.array(count([r.get("question") or "" for r in rows]), dtype=float)
    answers = [_answer_text(r) for r in rows]
    a_tokens = np.array(count(answers), dtype=float)
    split = np.array([r["split"] for r in rows])
    label_of = np.array([r["label"] for r in rows])
    letter_of = np.array([r.get("answer_letter") or "" for r in rows])
    out = []
    for side in ["all", *sorted(set(split.tolist()))]:
        for label in ["all", *sorted(set(label_of.tolist()))]:
            mask = np.ones(len(rows), bool)
            if side != "all":
                mask &= split == side
            if label != "all":
                mask &= label_of == label
            keep = np.flatnonzero(mask)
            if not len(keep):
                continue
            letters = Counter(letter_of[keep].tolist())
            letters.pop("", None)
            d1, d2 = distinct_ngrams([answers[k] for k in sample_indices(keep)])
            a = a_tokens[keep]
            out.append(
                ConfigStats(
                    config, side, label, len(keep),
                    round(float(q_tokens[keep].mean()), 2), round(float(a.mean()), 2),
                    float(np.percentile(a, 50)), float(np.percentile(a, 95)),
                    dict(sorted(letters.items())), d1, d2,
                )
            )  # fmt: skip
    return out


def sample_indices(keep: np.ndarray, size: int = DISTINCT_SAMPLE, seed: int = 0) -> np.ndarray:
    """At most `size` of `keep`, drawn with a seeded generator (all when fewer)."""
    if len(keep) <= size:
        return keep
    return np.sort(np.random.default_rng(seed).choice(keep, size, replace=False))


def _answer_text(row: dict[str, Any]) -> str:
    parts = [row.get("reasoning") or "", row.get("answer") or ""]
    return "\n".join(p for p in parts if p)


def distinct_ngrams(texts: list[str]) -> tuple[float, float]:
    """distinct-1 and distinct-2: distinct word uni-/bigrams over all words of `texts`
    (0 when there are none): near 0 means the texts repeat each other. The ratio falls as
    a corpus grows, so `config_stats` measures it on a seeded sample of at most
    DISTINCT_SAMPLE texts per group: groups of different sizes compare."""
    uni: set[str] = set()
    bi: set[tuple[str, str]] = set()
    n1 = n2 = 0
    for t in texts:
        w = t.lower().split()
        uni.update(w)
        bi.update(pairwise(w))
        n1 += len(w)
        n2 += max(0, len(w) - 1)
    return (round(len(uni) / n1, 4) if n1 else 0.0, round(len(bi) / n2, 4) if n2 else 0.0)


def yield_rows(build_dir: Path) -> list[YieldRow]:
    """The model splits' yield per split and class (see the module); [] without them."""
    prov = _read(build_dir / PROVENANCE) or {}
    counts = ((prov.get("stages") or {}).get("model_splits") or {}).get("counts") or {}
    stamp = _read(build_dir / "model_splits" / "stamp.json") or {}
    by_class = {
        r["name"]: r.get("by_class") or {}
        for r in ((stamp.get("summary") or {}).get("reports") or [])
    }
    fails = _failures(build_dir)
    out = []
    for split, c in sorted(counts.items()):
        rows = [("all", c.get("samples", 0), c.get("kept", 0))]
        rows += [(lab, n, k) for lab, (n, k) in sorted(by_class.get(split, {}).items())]
        for label, samples, kept in rows:
            f = fails.get((split, label), {"kind": Counter(), "reason": Counter()})
            kinds = dict(c.get("failed") or {}) if label == "all" else dict(f["kind"])
            top = dict(f["reason"].most_common(3))
            y = round(kept / samples, 4) if samples else 0.0
            out.append(YieldRow(split, label, samples, kept, y, dict(sorted(kinds.items())), top))
    return out


def _read(path: Path) -> dict | None:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def _failures(build_dir: Path) -> dict[tuple[str, str], dict[str, Counter]]:
    """(split, label or `all`) -> failure kinds and reasons, from the `failures` config."""
    import pyarrow.parquet as pq

    out: dict[tuple[str, str], dict[str, Counter]] = defaultdict(
        lambda: {"kind": Counter(), "reason": Counter()}
    )
    for rel in (all_data_files(build_dir).get("failures") or {}).values():
        if not (build_dir / rel).is_file():
            continue
        have = set(pq.read_schema(build_dir / rel).names)
        cols = [c for c in ("config", "label", "kind", "reason") if c in have]
        if "config" not in have:  # not the model splits' failures table: no yield from it
            continue
        for r in pq.read_table(build_dir / rel, columns=cols).to_pylist():
            reason = (r.get("reason") or "")[:80]
            for label in ("all", r.get("label") or ""):
                out[(r["config"], label)]["kind"][r.get("kind") or "unknown"] += 1
                out[(r["config"], label)]["reason"][reason] += 1
    return out


def video_stats(
    videos: list[dict[str, Any]], clips: list[dict[str, Any]], clip_side: dict[str, str]
) -> list[VideoStats]:
    """Per side (and `all`) and class of the source video (and `all`): see VideoStats."""
    duration = {v["video_id"]: float(v.get("duration") or 0.0) for v in videos}
    label = {v["video_id"]: v["label"] for v in videos}
    groups: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in clips:
        vid = c["video_id"]
        side = clip_side.get(c["clip_id"], "unassigned")
        for s in ("all", side):
            for lab in ("all", label.get(vid, c["label"])):
                groups[(s, lab)][vid].append(float(c["end"]) - float(c["start"]))
    out = []
    for (side, lab), per_video in sorted(groups.items()):
        counts = [len(v) for v in per_video.values()]
        out.append(
            VideoStats(
                side, lab, len(per_video), sum(counts),
                round(sum(duration.get(v, 0.0) for v in per_video) / 3600, 4),
                round(sum(sum(v) for v in per_video.values()) / 3600, 4),
                round(sum(counts) / len(counts), 3), max(counts),
            )
        )  # fmt: skip
    return out


def stats_configs(build_dir: Path) -> dict[str, dict[str, str]]:
    """The configs whose rows get statistics: every declared one but `failures` and the
    mixtures (conversations, made from the others)."""
    return {
        c: f
        for c, f in sorted(all_data_files(build_dir).items())
        if c not in SKIP_CONFIGS and not c.startswith("mix-")
    }
