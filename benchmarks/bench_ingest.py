"""What ingest's full-decode verification costs, per hour of 720p source and in a build.

Synthetic 1280x720 30 fps dashcam videos (made by `autodrive sample`, the same cache as
bench_chunk.py) are probed two ways, each `--runs` times (the median):
- `full`: what ingest does, every packet read and every frame decoded (threaded);
- `demux`: the cheaper probe it replaced, every packet read and only the first frame
  decoded (`probe_video(..., full_decode=False)`).
The verification cost is `full - demux`. It prints it as seconds per hour of source and
as a share of a `reencode` build of the same videos (ingest with full decode + chunk
into 6 s windows every 5.5 s, one process per core).

It also times the sha256 of every source file (ingest hashes each one to find
byte-identical duplicates, builders/ingest/sources.py), one thread, files in the page
cache: seconds per hour of this source and MB/s (scale by your files' bitrate; the
synthetic videos compress far better than camera footage), and the same step on a
re-run, where the memo (size + modification time) skips every unchanged file.

And the perceptual signature of every source (`ingest.near_duplicates: group`: 8 frames
sought and decoded, `builders/audit/phash.py`'s `hash_video`), one process: seconds per
hour of source, the same step on a re-run with the memo, and the grouping of
`--signatures` videos' signatures (every pair, union-find, `dataset/source_groups.py`)
that the train/test assignment runs.

    python benchmarks/bench_ingest.py [--videos 2] [--duration 40] [--runs 3]
                                      [--signatures 10000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from bench_chunk import median_time, sample_manifest  # same folder: the same sources

from vlm_autodrive.builders.audit.phash import FRAMES, hash_video
from vlm_autodrive.builders.clips.stage import run_chunk
from vlm_autodrive.builders.core.files import file_sha256
from vlm_autodrive.builders.core.sections import ChunkConfig, worker_count
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.dataset.source_groups import source_groups
from vlm_autodrive.builders.ingest.manifest import read_manifest
from vlm_autodrive.builders.ingest.probe import probe_video
from vlm_autodrive.builders.ingest.records import read_videos
from vlm_autodrive.builders.ingest.sources import hash_sources, read_memo, sign_sources
from vlm_autodrive.builders.ingest.stage import run_ingest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--duration", type=float, default=40.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--signatures", type=int, default=10_000)
    args = ap.parse_args()
    cores = worker_count(0)
    manifest = sample_manifest(args.videos, args.duration)
    taxonomy = load_taxonomy()
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        run_ingest(manifest, work / "base", taxonomy, progress=False)
        videos = read_videos(work / "base" / "ingest" / "videos.parquet")
        paths = [v.path for v in videos]
        hours = sum(v.duration for v in videos) / 3600
        full = median_time(lambda _: [probe_video(p) for p in paths], args.runs)
        demux = median_time(lambda _: [probe_video(p, full_decode=False) for p in paths], args.runs)
        size = sum(Path(p).stat().st_size for p in paths)
        sha = median_time(lambda _: [file_sha256(Path(p)) for p in paths], args.runs)
        rows, _ = read_manifest(manifest, taxonomy.names, taxonomy.normal)
        memo = read_memo(work / "base" / "ingest")
        memoised = median_time(lambda _: hash_sources(rows, memo), args.runs)
        sign = median_time(lambda _: [hash_video(Path(p)) for p in paths], args.runs)
        sign_memo = median_time(lambda _: sign_sources(paths, memo), args.runs)
        signed = random_signatures(args.signatures)
        grouping = median_time(lambda _: source_groups(signed), args.runs)
        cfg = ChunkConfig(window=6.0, stride=5.5, mode="reencode")

        def chunk(run):
            build = work / f"build-{run}"
            shutil.copytree(work / "base" / "ingest", build / "ingest")
            run_chunk(build, cfg, taxonomy, cores, progress=False)

        cut = median_time(chunk, args.runs)
        verify = full - demux
        row = {
            "videos": len(videos),
            "source_s": round(hours * 3600, 1),
            "probe_full_s": round(full, 2),
            "probe_demux_s": round(demux, 2),
            "verify_s_per_source_hour": round(verify / hours, 1),
            "chunk_reencode_s": round(cut, 2),
            "verify_share_of_reencode_build": round(verify / (full + cut), 3),
            "source_mb": round(size / 1e6, 1),
            "sha256_s": round(sha, 3),
            "sha256_s_per_source_hour": round(sha / hours, 2),
            "sha256_mb_per_s": round(size / 1e6 / sha, 1),
            "sha256_rerun_memoised_s": round(memoised, 4),
            "signature_s": round(sign, 3),
            "signature_s_per_source_hour": round(sign / hours, 2),
            "signature_rerun_memoised_s": round(sign_memo, 4),
            "grouping_videos": args.signatures,
            "grouping_s": round(grouping, 2),
        }
        print(
            f"{len(videos)} videos, 1280x720 30 fps, {hours * 3600:g} s of source, "
            f"{cores} cores, median of {args.runs} runs each\n"
            f"probe with full decode {full:.2f} s, demux + first frame {demux:.2f} s: "
            f"verification {verify:.2f} s = {verify / hours:.0f} s per hour of source\n"
            f"reencode build (ingest {full:.2f} s + chunk {cut:.2f} s): verification is "
            f"{100 * verify / (full + cut):.1f}% of it\n"
            f"sha256 of the sources ({size / 1e6:.1f} MB): {sha:.3f} s = {sha / hours:.2f} s "
            f"per hour of source ({size / 1e6 / sha:.0f} MB/s, one thread); a re-run with "
            f"the memo: {memoised * 1000:.1f} ms\n"
            f"perceptual signatures ({FRAMES} frames a video): {sign:.3f} s = "
            f"{sign / hours:.2f} s per hour of source (one process); a re-run with the memo: "
            f"{sign_memo * 1000:.1f} ms; grouping {args.signatures:,} videos' signatures "
            f"(every pair): {grouping:.2f} s"
        )
        print(json.dumps(row))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def random_signatures(n: int) -> dict[str, dict]:
    """`n` videos with random unit signatures (as ingest records them) and their own
    sha256: what the assignment groups at that scale."""
    import numpy as np

    rng = np.random.default_rng(0)
    sigs = rng.normal(size=(n, FRAMES, 63)).astype("<f4")
    sigs /= np.linalg.norm(sigs, axis=2, keepdims=True)
    return {
        f"v{i:06d}": {"sha256": f"{i:064x}", "perceptual_signature": s.tobytes()}
        for i, s in enumerate(sigs)
    }


if __name__ == "__main__":
    main()
