"""Synthetic ingest and chunk tables (no video files), for benchmarks and tests.

`write_synthetic_tables(build_dir, videos, seed)` writes `ingest/videos.parquet` and
`chunk/clips.parquet` shaped like the paper's data: ~40 s event videos (10% Collision,
the rest Near-Collision, optionally some Normal Driving videos), cut into 6 s windows
every 5.5 s with the chunker's rule (the clip holding the event moment with 1 s of margin
gets its label, clips overlapping it are dropped, the others are Normal Driving), about
5.3 clips per video (the paper: ~53,000 clips of ~10,000 videos). Metadata is drawn from
the taxonomy's vocabulary with some fields missing and some values outside it.
Deterministic for a seed.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pyarrow as pa

from vlm_autodrive.builders.clips.records import CLIP_SCHEMA
from vlm_autodrive.builders.core.taxonomy import Taxonomy, load_taxonomy
from vlm_autodrive.builders.ingest.records import VIDEO_SCHEMA

OOV = {
    "weather": ["hail", "sandstorm"],
    "light": ["tunnel lighting"],
    "road": ["dirt track"],
    "scene": ["industrial"],
    "actor_type": ["scooter", "tram"],
    "motion": ["drifting"],
    "impact_side": ["top"],
    "blame": ["animal"],
    "evasive_action": ["honking"],
}


def _value(rng: random.Random, vocab: dict[str, list[str]], f: str, missing: float, oov: float):
    r = rng.random()
    if r < missing:
        return None
    if r < missing + oov and f in OOV:
        return rng.choice(OOV[f])
    return rng.choice(vocab[f])


def synthetic_video(
    i: int,
    rng: random.Random,
    taxonomy: Taxonomy,
    normal_fraction: float = 0.0,
    collision_fraction: float = 0.1,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One video row and its clip rows (`collision_fraction` of the event videos get the
    first event class, the rest the second)."""
    vocab = taxonomy.vocab
    events = [c.name for c in taxonomy.classes if c.is_event]
    vid = f"v{i:06d}"
    duration = round(rng.uniform(30.0, 40.0), 3)
    r = rng.random()
    label = (
        taxonomy.normal
        if r < normal_fraction
        else (events[0] if rng.random() < collision_fraction else events[min(1, len(events) - 1)])
    )
    has_event = label != taxonomy.normal
    event_time = round(rng.uniform(4.0, duration - 4.0), 3) if has_event else None

    def v(f: str, missing: float = 0.08, oov: float = 0.02):
        return _value(rng, vocab, f, missing, oov)

    actors = [{"role": "ego", "type": "car", "motion": v("motion"), "impact_side": None}]
    for _ in range(rng.randint(1, 2) if has_event else rng.randint(0, 1)):
        actors.append(
            {
                "role": "other",
                "type": v("actor_type"),
                "motion": v("motion"),
                "impact_side": v("impact_side", 0.3) if label == events[0] else None,
            }
        )
    if label == events[0]:
        actors[0]["impact_side"] = v("impact_side", 0.2)
    metadata = {
        "weather": v("weather"),
        "light": v("light"),
        "road": v("road"),
        "scene": v("scene"),
        "blame": v("blame", 0.3) if has_event else None,
        "evasive_action": v("evasive_action", 0.2) if has_event else None,
        "actors": actors,
        "source_class": None,
    }
    video = {
        "video_id": vid,
        "path": f"/data/videos/{vid}.mp4",
        "label": label,
        "event_start": event_time,
        "event_time": event_time,
        "event_end": event_time,
        "source": "synthetic",
        "metadata": metadata,
        "duration": duration,
        "fps": 30.0,
        "frames": int(duration * 30),
        "width": 1280,
        "height": 720,
        "codec": "h264",
        "fingerprint": f"synthetic:{vid}:{label}:{event_time}:{duration}",
    }
    clips = []
    window, stride, margin = 6.0, 5.5, 1.0
    starts = [round(k * stride, 6) for k in range(int((duration - window) // stride) + 1)]
    if event_time is not None and not any(
        s + margin <= event_time <= s + window - margin for s in starts
    ):
        # As the chunker's ensure_event_clip: a window centred on the event moment.
        starts = sorted(
            [*starts, round(min(max(event_time - window / 2, 0), duration - window), 6)]
        )
    for start in starts:
        end = start + window
        offset = None
        if event_time is None or end <= event_time - margin or start >= event_time + margin:
            clip_label = taxonomy.normal
        elif start + margin <= event_time <= end - margin:
            clip_label, offset = label, round(event_time - start, 6)
        else:
            continue  # ambiguous: dropped, as the chunker does by default
        cid = f"{vid}_{round(start * 1000):07d}"
        clips.append(
            {
                "clip_id": cid,
                "video_id": vid,
                "path": f"clips/{vid}/{cid}.mp4",
                "planned_start": start,
                "planned_end": end,
                "start": start,
                "end": end,
                "fps": 30.0,
                "frames": 180,
                "width": 1280,
                "height": 720,
                "size_bytes": 1_500_000,
                "label": clip_label,
                "event_offset": offset,
                "cut_mode": "reencode",
            }
        )
    return video, clips


def write_synthetic_tables(
    build_dir: Path,
    videos: int,
    seed: int = 0,
    taxonomy: Taxonomy | None = None,
    normal_fraction: float = 0.0,
    collision_fraction: float = 0.1,
) -> tuple[int, int]:
    """Write both tables under `build_dir`; return (videos, clips)."""
    import pyarrow.parquet as pq

    taxonomy = taxonomy or load_taxonomy()
    rng = random.Random(seed)
    vrows, crows = [], []
    for i in range(videos):
        v, c = synthetic_video(i, rng, taxonomy, normal_fraction, collision_fraction)
        vrows.append(v)
        crows.extend(c)
    for rel, rows, schema in (
        ("ingest/videos.parquet", vrows, VIDEO_SCHEMA),
        ("chunk/clips.parquet", crows, CLIP_SCHEMA),
    ):
        path = build_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return len(vrows), len(crows)
