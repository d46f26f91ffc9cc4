"""Synthetic dataset configs (Parquet only, no videos, no model), for mixing tests and
benchmarks.

`write_synthetic_configs(build_dir, sizes)` writes `data/<config>/train-<hash>.parquet` (and a
small test side) with the columns of each kind of config: `mcq`-like (question with
lettered options, options, answer_letter, answer), caption-like (question, answer),
`vqa` (plus dimension), reasoning (plus reasoning and the Cosmos-Reason1 target), and
`failures` (no question/answer: not mixable). Text lengths are realistic (a reasoning
trace ~1.5 kB) so byte volumes match real builds. Files are streamed in chunks and
declared in provenance.json and the card, so `datasets.load_dataset` and the mixer read
them as they read a real build. Deterministic: the same sizes give the same bytes.
"""

from __future__ import annotations

import random
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa

from vlm_autodrive.builders.core.answers import OPTION_LETTERS
from vlm_autodrive.builders.dataset.rows import COMMON_FIELDS, content_hash, row_id
from vlm_autodrive.builders.mix.conversations import reasoning_form

CLASSES = ("Collision", "Near-Collision", "Normal Driving")

# Train rows per config and class at the sizes the paper gives (README, "The paper"): MCQ
# one per clip (~1k / 9k / 35k after the test split), ~20k metadata captions, ~50k VLM
# captions, ~132k VQA (124-140k), ~12k valid reasoning MCQ traces, ~10k reasoning VQA.
PAPER_SIZES: dict[str, dict[str, int]] = {
    "mcq": {"Collision": 1_000, "Near-Collision": 9_000, "Normal Driving": 35_000},
    "caption_metadata": {"Collision": 1_000, "Near-Collision": 9_000, "Normal Driving": 10_000},
    "caption_vlm": {"Collision": 1_000, "Near-Collision": 9_000, "Normal Driving": 40_000},
    "vqa": {"Collision": 6_000, "Near-Collision": 54_000, "Normal Driving": 72_000},
    "reasoning_mcq": {"Collision": 300, "Near-Collision": 3_700, "Normal Driving": 8_000},
    "reasoning_vqa": {"Collision": 500, "Near-Collision": 4_500, "Normal Driving": 5_000},
}

_SCENE = (
    "The ego vehicle drives along a {road} in {weather} weather during the {light}. "
    "Traffic is moderate; a {actor} ahead is {motion}. "
)
_VOCAB = {
    "road": ["urban street", "highway", "rural road", "intersection"],
    "weather": ["clear", "rainy", "cloudy", "snowy"],
    "light": ["day", "night", "dusk"],
    "actor": ["car", "truck", "motorcycle", "pedestrian"],
    "motion": ["braking", "turning left", "changing lanes", "going straight"],
}
# Words for a row-specific sentence, so the text compresses like real text does, not
# like one template repeated.
_WORDS = (
    "ahead",
    "lane",
    "merges",
    "slows",
    "brakes",
    "signal",
    "turns",
    "crosses",
    "shoulder",
    "median",
    "truck",
    "van",
    "cyclist",
    "pedestrian",
    "crosswalk",
    "junction",
    "ramp",
    "exit",
    "curve",
    "wet",
    "glare",
    "shadow",
    "parked",
    "oncoming",
    "follows",
    "gap",
    "closes",
    "swerves",
    "stops",
    "accelerates",
    "mirror",
    "horn",
    "light",
    "green",
    "amber",
    "red",
    "queue",
    "bus",
    "stop",
    "barrier",
    "cone",
    "works",
    "tunnel",
    "bridge",
    "roundabout",
    "yields",
    "overtakes",
    "distance",
    "speed",
    "steady",
)
MCQ_QUESTION = (
    "What kind of driving event happens in this dashcam video? Choose one option.\n"
    + "".join(f"{OPTION_LETTERS[i]}. {c}: ...\n" for i, c in enumerate(CLASSES))
    + "Reply with the letter of the correct option."
)


def _kind(config: str) -> str:
    if config == "failures":
        return "failures"
    if config.startswith("reasoning"):
        return "reasoning"
    if config in ("mcq", "vqa"):
        return config
    return "caption"


def _schema(kind: str) -> pa.Schema:
    fields = list(COMMON_FIELDS)
    if kind == "failures":
        return pa.schema(
            [*fields[:5], ("request_id", pa.string()), ("reason", pa.string()),
             ("raw_output", pa.string())]
        )  # fmt: skip
    fields.append(("question", pa.string()))
    if kind in ("mcq", "vqa", "reasoning"):
        fields += [("options", pa.list_(pa.string())), ("answer_letter", pa.string())]
    fields.append(("answer", pa.string()))
    if kind == "vqa":
        fields.append(("dimension", pa.string()))
    if kind == "reasoning":
        fields += [("reasoning", pa.string()), ("target", pa.string())]
    return pa.schema(fields)


def _row(
    config: str, kind: str, side: str, label: str, k: int, variant: int, varied: bool = True
) -> dict:
    """One row; `variant` changes the generated text (a template edit) but not the id;
    `varied` False repeats words instead of drawing them (faster, for tests)."""
    _words = _drawn_words if varied else _same_words
    vid = k // 5
    clip = f"v{vid:06d}_{(k % 5) * 5500:07d}"
    pick = {f: vals[(k * 7 + i) % len(vals)] for i, (f, vals) in enumerate(_VOCAB.items())}
    scene = _SCENE.format(**pick) + _words((config, k), 12) + (" (edited)" if variant else "")
    scene += ". "
    letter = OPTION_LETTERS[CLASSES.index(label)] if label in CLASSES else "A"
    row: dict[str, Any] = {
        "id": row_id(config, clip, 0),
        "clip_id": clip,
        "video_id": f"v{vid:06d}",
        "label": label,
        "split": side,
        "generator": "synthetic",
        "template": f"{config}.jinja@000000000000",
        "video": f"clips/v{vid:06d}/{clip}.mp4",
    }
    if kind == "failures":
        row.update(request_id=f"req-{k}", reason="no answer", raw_output=scene)
        row["content_hash"] = content_hash(scene)
        return row
    if kind == "mcq":
        row.update(question=MCQ_QUESTION, options=list(CLASSES), answer_letter=letter)
        row["answer"] = f"{letter}. {label}" + (" (edited)" if variant else "")
    elif kind == "vqa":
        row.update(
            question=f"What is the weather in this clip? {scene}\nA. clear\nB. rainy\nC. snowy",
            options=["clear", "rainy", "snowy"],
            answer_letter="A",
            answer="A. clear",
            dimension="weather",
        )
    elif kind == "reasoning":
        think = " ".join(_words((config, k, j), 40) + "." for j in range(5))
        row.update(question=MCQ_QUESTION, options=list(CLASSES), answer_letter=letter)
        row.update(answer=letter, reasoning=think, target=reasoning_form(think, letter))
    else:
        row.update(
            question="Describe this dashcam video in detail.",
            answer=scene + _words((config, k, "a"), 60) + ".",
        )
    parts = [row[c] for c in ("question", "answer", "reasoning") if c in row]
    row["content_hash"] = content_hash(*parts, row["video"])
    return row


def _drawn_words(key: tuple, n: int) -> str:
    """n words drawn from a generator seeded by `key` (crc32: the same in every process)."""
    rng = random.Random(zlib.crc32(repr(key).encode()))
    return " ".join(rng.choices(_WORDS, k=n))


def _same_words(key: tuple, n: int) -> str:
    return " ".join(_WORDS[:n] if n <= len(_WORDS) else _WORDS * (n // len(_WORDS) + 1))


def write_config(
    build_dir: Path,
    config: str,
    per_class: dict[str, int],
    side: str = "train",
    start: int = 0,
    variant: dict[str, int] | None = None,
    chunk: int = 20_000,
    varied: bool = True,
) -> str:
    """Write one side of one config, streamed in chunks; rows are numbered from `start`.
    `variant` maps a class to 1 for rows whose text should differ (an edited template);
    `varied` False writes repeated words (faster; the bytes compress unrealistically).
    Returns the file's path relative to `build_dir` (named by its content, as a build's;
    declare it with `register_config`)."""
    import os

    import pyarrow.parquet as pq

    from vlm_autodrive.builders.dataset.folder import DATA_DIR, store_data_file

    kind = _kind(config)
    schema = _schema(kind)
    labels = [lab for lab, n in per_class.items() for _ in range(n)]
    tmp = Path(build_dir) / DATA_DIR / config / f".{side}.{os.getpid()}.parquet.tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    variant = variant or {}
    try:
        with pq.ParquetWriter(tmp, schema) as w:
            for lo in range(0, len(labels), chunk):
                rows = [
                    _row(config, kind, side, lab, start + lo + j, variant.get(lab, 0), varied)
                    for j, lab in enumerate(labels[lo : lo + chunk])
                ]
                w.write_table(pa.Table.from_pylist(rows, schema=schema))
        return store_data_file(build_dir, config, side, tmp)
    finally:
        tmp.unlink(missing_ok=True)


def write_synthetic_configs(
    build_dir: Path,
    sizes: dict[str, dict[str, int]] | None = None,
    test_per_class: int = 3,
    variant: dict[str, dict[str, int]] | None = None,
    varied: bool = True,
) -> dict[str, Any]:
    """Write every config of `sizes` (default PAPER_SIZES) plus a small test side, and
    declare them in provenance.json and the card (`varied`: see write_config). Returns
    the provenance."""
    from vlm_autodrive.builders.dataset.folder import register_config

    build_dir = Path(build_dir)
    sizes = PAPER_SIZES if sizes is None else sizes
    prov: dict[str, Any] = {}
    for config, per_class in sizes.items():
        edits = (variant or {}).get(config)
        train = write_config(build_dir, config, per_class, "train", 0, edits, varied=varied)
        files = {"train": train}
        if test_per_class:
            test = {lab: test_per_class for lab in per_class}
            files["test"] = write_config(build_dir, config, test, "test", 10_000_000, varied=varied)
        prov = register_config(
            build_dir,
            config,
            files=files,
            description=f"synthetic {config} rows",
            generator="synthetic",
            template=f"{config}.jinja@000000000000",
            stage="synthetic",
            stage_info={"sizes": sizes},
        )
    return prov
