"""Small builds for the mixing, publishing and changelog tests (no videos decoded)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pyarrow.parquet as pq

from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.dataset.folder import data_path
from vlm_autodrive.builders.rules.stage import RuleSplitsConfig, build_rule_splits
from vlm_autodrive.builders.synthetic.configs import write_synthetic_configs
from vlm_autodrive.builders.synthetic.tables import write_synthetic_tables

SMALL = {
    "mcq": {"Collision": 4, "Near-Collision": 10, "Normal Driving": 50},
    "caption_metadata": {"Collision": 3, "Near-Collision": 7, "Normal Driving": 20},
    "caption_vlm": {"Collision": 5, "Near-Collision": 15, "Normal Driving": 40},
    "reasoning_mcq": {"Collision": 2, "Near-Collision": 6, "Normal Driving": 12},
    "failures": {"Collision": 1, "Near-Collision": 1, "Normal Driving": 1},
}


def small_build(tmp_path: Path, sizes: dict | None = None) -> Path:
    """A build folder with synthetic configs of the SMALL sizes (train) and 3 test rows
    per class; repeated words rather than drawn ones, for speed."""
    build = tmp_path / "build"
    write_synthetic_configs(build, SMALL if sizes is None else sizes, varied=False)
    return build


def recipe(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def read(build: Path, config: str, side: str = "train"):
    return pq.read_table(data_path(build, config, side))


def rule_build(build: Path, templates: Path | None = None, videos: int = 60) -> Path:
    """Synthetic clip tables -> the rule configs, with a small stand-in file per clip
    (publishing copies the clips the rows use, and refuses empty ones)."""
    if not (build / "chunk" / "clips.parquet").exists():
        write_synthetic_tables(build, videos, seed=3, collision_fraction=0.3)
    config = RuleSplitsConfig(test_per_class=2, templates=str(templates) if templates else None)
    build_rule_splits(build, config, load_taxonomy(), {})
    for rel in pq.read_table(build / "chunk" / "clips.parquet", columns=["path"])["path"]:
        clip = build / rel.as_py()
        clip.parent.mkdir(parents=True, exist_ok=True)
        if not clip.exists():
            clip.write_bytes(f"stand-in clip {rel.as_py()}\n".encode())
    return build


def relabel_one_video(build: Path) -> str:
    """One Near-Collision video relabelled Collision, in its ingest row and its event
    clips, as ingest and chunk write them after that manifest edit; its id."""
    import pyarrow as pa

    path = build / "ingest" / "videos.parquet"
    videos = pq.read_table(path).to_pylist()
    v = next(x for x in videos if x["label"] == "Near-Collision")
    v["label"], v["fingerprint"] = "Collision", "edited"
    pq.write_table(pa.Table.from_pylist(videos, schema=pq.read_schema(path)), path)
    path = build / "chunk" / "clips.parquet"
    clips = pq.read_table(path).to_pylist()
    for c in clips:
        if c["video_id"] == v["video_id"] and c["label"] == "Near-Collision":
            c["label"] = "Collision"
    pq.write_table(pa.Table.from_pylist(clips, schema=pq.read_schema(path)), path)
    return v["video_id"]
