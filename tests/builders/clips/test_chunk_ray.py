"""Chunking on Ray (`engine: ray`) gives what the local engine gives, and survives faults.

One local Ray session for the module (2 CPUs, no dashboard), stopped after. Its workers
run `tests/doubles/ray_faults.py`, so a test can make a video's task raise every time or
its worker die once. About 40 s on 2 idle cores, most of it Ray's start (~5 s) and the
local and Ray cuts of the same ingest.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO
from tests.doubles.ray_faults import VAR
from vlm_autodrive.builders.clips.stage import run_chunk
from vlm_autodrive.builders.core.ray_cluster import RaySettings
from vlm_autodrive.builders.core.sections import ChunkConfig
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.records import read_videos
from vlm_autodrive.builders.ingest.stage import run_ingest
from vlm_autodrive.builders.synthetic.sample import generate_sample

ray = pytest.importorskip("ray", reason="the ray extra: pip install 'vlm-autodrive[ray]'")

TAX = load_taxonomy()
CONFIG = ChunkConfig(window=4, stride=3.5)
SETTINGS = RaySettings(max_retries=1)


@pytest.fixture(scope="module")
def faults(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module", autouse=True)
def ray_session(faults):
    env = {VAR: str(faults), "PYTHONPATH": str(REPO)}
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            "env_vars": env,
            "worker_process_setup_hook": "tests.doubles.ray_faults.install",
        },
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    """4 synthetic 8 s videos (Collision, Near-Collision and Normal among them), ingested."""
    root = tmp_path_factory.mktemp("ray-chunk")
    manifest = generate_sample(root / "sample", 4, seed=5, duration=8.0, width=96, height=64)
    build = root / "ingested"
    run_ingest(manifest, build, TAX, progress=False)
    return build


def _files(build: Path) -> dict[str, bytes]:
    files = [*(build / "clips").rglob("*.mp4"), *(build / "chunk" / "parts").glob("*.json")]
    files += [build / "chunk" / n for n in ("clips.parquet", "summary.json", "rejects.jsonl")]
    return {f.relative_to(build).as_posix(): f.read_bytes() for f in files}


def test_ray_gives_the_local_engines_clip_table_labels_and_bytes(ingested, tmp_path):
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    shutil.copytree(ingested, local)
    shutil.copytree(ingested, on_ray)
    a = run_chunk(local, CONFIG, TAX, workers=2, progress=False)
    b = run_chunk(on_ray, CONFIG, TAX, progress=False, engine="ray", ray=SETTINGS)
    assert b.cut_now == a.cut_now == 4 and len(b.clips) == len(a.clips) >= 4
    assert len({c.label for c in b.clips}) >= 2  # labels, not only Normal Driving
    first, second = _files(local), _files(on_ray)
    assert first.keys() == second.keys()
    assert [p for p in first if first[p] != second[p]] == []
    # A finished build does no work on Ray either.
    again = run_chunk(on_ray, CONFIG, TAX, progress=False, engine="ray", ray=SETTINGS)
    assert again.cut_now == 0 and _files(on_ray) == second


def test_a_task_failing_after_rays_retries_is_a_reject_with_its_reason(ingested, tmp_path, faults):
    build = tmp_path / "b"
    shutil.copytree(ingested, build)
    vids = sorted(v.video_id for v in read_videos(ingested / "ingest" / "videos.parquet"))
    bad, dies = vids[0], vids[1]
    (faults / f"{bad}.raise").touch()
    (faults / f"{dies}.die-once").touch()
    try:
        res = run_chunk(build, CONFIG, TAX, progress=False, engine="ray", ray=SETTINGS)
    finally:
        (faults / f"{bad}.raise").unlink()
    # The worker that died was replaced and its video cut on the retry.
    assert (faults / f"{dies}.died").exists()
    assert [r.video_id for r in res.rejects] == [bad]
    assert "failed on all 2 tries: RuntimeError: scripted failure" in res.rejects[0].reason
    assert {c.video_id for c in res.clips} == set(vids) - {bad}
    assert not (build / "clips" / bad).exists() or not any((build / "clips" / bad).iterdir())
    rejects = [json.loads(x) for x in (build / "chunk" / "rejects.jsonl").read_text().splitlines()]
    assert [r["video_id"] for r in rejects] == [bad]
    # Fixed: the re-run cuts the rejected video only (its part recorded the reject, with
    # the same key, so it is kept; a changed video or --force would re-cut it).
    summary = json.loads((build / "chunk" / "summary.json").read_text())
    assert summary["videos_rejected"] == 1 and summary["videos"] == 4
    table = pq.read_table(build / "chunk" / "clips.parquet")
    assert table.num_rows == len(res.clips)


def test_missing_ray_is_a_clear_message(monkeypatch):
    import builtins

    from vlm_autodrive.builders.core import ray_cluster

    real = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ray_cluster.RayNotInstalled, match=r"vlm-autodrive\[ray\]"):
        ray_cluster.import_ray()
