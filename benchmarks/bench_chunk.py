"""Chunking throughput: this project against the ffmpeg command line, in one run.

Synthetic 1280x720 30 fps 40 s dashcam videos (made by `autodrive sample`) are cut into
the paper's windows (6 s every 5.5 s: 7 clips a video) four ways:
- `reencode` here: one decode pass per source, frame-exact H.264, one process per core;
- the ffmpeg command line (imageio-ffmpeg's static binary), one `ffmpeg -ss S -i SRC -t L
  -c:v libx264` per window at the same CRF and preset, as many at once as there are cores;
- `copy` here (stream copy) and `ffmpeg -ss S -i SRC -t L -c copy` per window.
It prints seconds, source-video seconds per wall second (x real time), and the ratio.

    python benchmarks/bench_chunk.py [--videos 2] [--crf 23] [--preset veryfast]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vlm_autodrive.builders.clips.stage import run_chunk
from vlm_autodrive.builders.clips.windows import plan_windows
from vlm_autodrive.builders.core.recipe import ChunkConfig, worker_count
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.records import read_videos
from vlm_autodrive.builders.ingest.stage import run_ingest
from vlm_autodrive.builders.synthetic.sample import generate_sample

CACHE = Path(tempfile.gettempdir()) / "vlm-autodrive-bench-videos"


def ffmpeg_cut(exe: str, jobs: list[tuple[str, float, float, Path]], codec: list[str], cores: int):
    def one(job):
        src, start, length, out = job
        subprocess.run(
            [
                exe,
                "-nostdin",
                "-v",
                "error",
                "-y",
                "-ss",
                f"{start}",
                "-i",
                src,
                "-t",
                f"{length}",
                "-an",
                *codec,
                str(out),
            ],
            check=True,
        )

    with ThreadPoolExecutor(cores) as pool:
        list(pool.map(one, jobs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--crf", type=int, default=23)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--duration", type=float, default=40.0)
    args = ap.parse_args()
    import imageio_ffmpeg

    exe = imageio_ffmpeg.get_ffmpeg_exe()
    cores = worker_count(0)
    src_dir = CACHE / f"{args.videos}x{args.duration:g}s"
    manifest = src_dir / "manifest.jsonl"
    if not manifest.exists():
        t = time.perf_counter()
        generate_sample(
            src_dir,
            args.videos,
            seed=1,
            duration=args.duration,
            width=1280,
            height=720,
            fps=30.0,
            gop=30,
        )
        print(f"(generated {args.videos} source videos in {time.perf_counter() - t:.1f} s)")
    taxonomy = load_taxonomy()
    work = Path(tempfile.mkdtemp(prefix="bench-chunk-"))
    try:
        run_ingest(manifest, work / "base", taxonomy, progress=False)
        videos = read_videos(work / "base" / "ingest" / "videos.parquet")
        base = ChunkConfig(
            window=6.0, stride=5.5, ensure_event_clip=False, crf=args.crf, preset=args.preset
        )
        windows = [(v, w) for v in videos for w in plan_windows(v.duration, 6.0, 5.5)]
        src_seconds = sum(v.duration for v in videos)
        print(
            f"{len(videos)} videos, 1280x720 30 fps, {src_seconds:g} s of source, "
            f"{len(windows)} windows of 6 s, {cores} cores, x264 crf {args.crf} "
            f"preset {args.preset}\n"
        )
        rows = []
        for mode, codec in (
            (
                "reencode",
                [
                    "-c:v",
                    "libx264",
                    "-crf",
                    str(args.crf),
                    "-preset",
                    args.preset,
                    "-pix_fmt",
                    "yuv420p",
                ],
            ),
            ("copy", ["-c", "copy"]),
        ):
            build = work / mode
            shutil.copytree(work / "base" / "ingest", build / "ingest")
            t = time.perf_counter()
            res = run_chunk(
                build, base.model_copy(update={"mode": mode}), taxonomy, cores, progress=False
            )
            ours = time.perf_counter() - t
            out = work / f"ffmpeg-{mode}"
            out.mkdir()
            jobs = [
                (v.path, w.start, w.end - w.start, out / f"{v.video_id}_{w.start}.mp4")
                for v, w in windows
            ]
            t = time.perf_counter()
            ffmpeg_cut(exe, jobs, codec, cores)
            theirs = time.perf_counter() - t
            # every window is cut (the labelling rule may then drop some of ours)
            assert res.planned == len(jobs) == len(list(out.glob("*.mp4")))
            rows.append(
                {
                    "mode": mode,
                    "ours_s": round(ours, 2),
                    "ffmpeg_s": round(theirs, 2),
                    "ours_x_realtime": round(src_seconds / ours, 1),
                    "ffmpeg_x_realtime": round(src_seconds / theirs, 1),
                    "speedup_vs_ffmpeg": round(theirs / ours, 2),
                }
            )
        print(
            f"{'mode':<9} {'ours s':>8} {'ffmpeg s':>9} {'ours xRT':>9} {'ffmpeg xRT':>11}"
            f" {'ratio (ffmpeg/ours)':>20}"
        )
        for r in rows:
            print(
                f"{r['mode']:<9} {r['ours_s']:>8} {r['ffmpeg_s']:>9} {r['ours_x_realtime']:>9}"
                f" {r['ffmpeg_x_realtime']:>11} {r['speedup_vs_ffmpeg']:>20}"
            )
        print(json.dumps(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
