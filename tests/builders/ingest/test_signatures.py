"""Ingest records each source's perceptual signature (`ingest.near_duplicates: group`, the
default), the audit's own (`phash.hash_video`), memoised beside the sha256 by size and
modification time; the dry run predicts the same; `off` records none."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from vlm_autodrive.builders.audit.phash import FRAMES, hash_video
from vlm_autodrive.builders.core.errors import InputError
from vlm_autodrive.builders.core.sections import IngestConfig
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest import sources
from vlm_autodrive.builders.ingest.manifest import read_manifest
from vlm_autodrive.builders.ingest.sources import hash_sources, read_memo, sign_sources
from vlm_autodrive.builders.ingest.stage import preview_ingest, run_ingest
from vlm_autodrive.builders.synthetic.sample import generate_sample


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """4 synthetic videos of 4 s at 96x64 (about a second to write)."""
    root = tmp_path_factory.mktemp("sample")
    return generate_sample(root, 4, seed=5, duration=4.0, width=96, height=64)


def test_ingest_records_the_audits_signature_and_reuses_it(manifest, tmp_path, monkeypatch):
    build, tax = tmp_path / "build", load_taxonomy()
    res = run_ingest(manifest, build, tax, progress=False)
    assert len(res.videos) == 4
    for v in res.videos:
        sig = np.frombuffer(v.perceptual_signature, dtype="<f4")
        assert sig.shape == (FRAMES * 63,)
        assert np.array_equal(sig, hash_video(v.path).signature)  # one implementation
    table = pq.read_table(build / "ingest" / "videos.parquet")
    assert table.column("perceptual_signature").null_count == 0

    # memoised by size and time: neither the dry run nor a re-run decodes a file again
    def no_decoding(path):
        raise AssertionError(f"{path} decoded again")

    monkeypatch.setattr(sources, "_signature", no_decoding)
    rows, _ = read_manifest(manifest, tax.names, tax.normal)
    _, memo = hash_sources(rows, read_memo(build / "ingest"))
    again = sign_sources([v.path for v in res.videos], memo)
    assert again == {v.path: v.perceptual_signature for v in res.videos}
    plan = preview_ingest(manifest, build, tax, duplicates="group")  # another key: planned
    assert plan.changed
    assert [v.perceptual_signature for v in plan.videos] == [
        v.perceptual_signature for v in res.videos
    ]


def test_off_records_no_signature_and_a_bad_value_is_named(manifest, tmp_path):
    build, tax = tmp_path / "build", load_taxonomy()
    res = run_ingest(manifest, build, tax, progress=False, near_duplicates="off")
    assert all(v.perceptual_signature is None for v in res.videos)
    assert all(len(entry) == 3 for entry in read_memo(build / "ingest").values())
    with pytest.raises(InputError, match=r"ingest\.near_duplicates"):
        run_ingest(manifest, build, tax, progress=False, near_duplicates="maybe")
    # a recipe's bare `off` (YAML reads it as false) means off
    assert IngestConfig.model_validate({"near_duplicates": False}).near_duplicates == "off"
    assert IngestConfig().near_duplicates == "group"


def test_the_audit_takes_the_signature_ingest_recorded(manifest, tmp_path, monkeypatch):
    from vlm_autodrive.builders.audit import duplicates
    from vlm_autodrive.builders.audit.duplicates import HashCache, source_duplicates

    res = run_ingest(manifest, tmp_path / "build", load_taxonomy(), progress=False)

    def no_decoding(path, video_id=""):
        raise AssertionError(f"{path} decoded again")

    monkeypatch.setattr(duplicates, "hash_video", no_decoding)
    cache = HashCache(tmp_path / "file_hashes.parquet")
    rows = [v.model_dump() for v in res.videos]
    groups, counts = source_duplicates(rows, {}, cache)
    assert groups == [] and counts == {"hashed": 4} and cache.read == 0
