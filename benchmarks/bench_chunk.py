"""Chunking throughput: this project against the ffmpeg command line, in one run.

Synthetic 1280x720 30 fps 40 s dashcam videos (made by `autodrive sample`) are cut into
the paper's windows (6 s every 5.5 s: 7 clips a video) five ways:
- `reencode` here: one decode pass per source, frame-exact H.264, one process per core;
- the ffmpeg command line (imageio-ffmpeg's static binary), one `ffmpeg -ss S -i SRC -t L
  -c:v libx264` per window at the same CRF and preset, as many at once as there are cores;
- the strongest ffmpeg baseline: one ffmpeg process per source that decodes it once and
  encodes every window through a `split` + `trim` filter graph (`-filter_complex`, one
  output per window), as many sources at once as there are cores;
- `copy` here (stream copy) and `ffmpeg -ss S -i SRC -t L -c copy` per window.
Each side runs `--runs` times (default 3); it prints the median seconds, source-video
seconds per wall second (x real time), and the ratio baseline/ours.

    python benchmarks/bench_chunk.py [--videos 2] [--duration 40] [--runs 3] [--crf 23]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
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


def ffmpeg_filter_graph(
    exe: str, sources: list[tuple[str, list]], x264: list[str], cores: int, out: Path
):
    """One ffmpeg per source: decode once, `split` into N `trim`med outputs, encode each."""

    def one(job):
        src, windows = job
        n = len(windows)
        graph = [f"[0:v]split={n}" + "".join(f"[s{k}]" for k in range(n))]
        outputs = []
        for k, w in enumerate(windows):
            graph.append(f"[s{k}]trim=start={w.start}:end={w.end},setpts=PTS-STARTPTS[o{k}]")
            outputs += ["-map", f"[o{k}]", *x264, str(out / f"{Path(src).stem}_{w.start}.mp4")]
        cmd = [exe, "-nostdin", "-v", "error", "-y", "-i", src, "-filter_complex", ";".join(graph)]
        subprocess.run([*cmd, *outputs], check=True)

    with ThreadPoolExecutor(cores) as pool:
        list(pool.map(one, sources))


def sample_manifest(videos: int, duration: float) -> Path:
    """The manifest of `videos` synthetic 1280x720 30 fps sources of `duration` seconds,
    generated once into a cache shared by the chunk and ingest benchmarks."""
    src_dir = CACHE / f"{videos}x{duration:g}s"
    manifest = src_dir / "manifest.jsonl"
    if not manifest.exists():
        t = time.perf_counter()
        generate_sample(
            src_dir, videos, seed=1, duration=duration, width=1280, height=720, fps=30.0, gop=30
        )
        print(f"(generated {videos} source videos in {time.perf_counter() - t:.1f} s)")
    return manifest


def median_time(fn, runs: int) -> float:
    """Median wall seconds of `runs` calls of `fn(run)`."""
    times = []
    for run in range(runs):
        t = time.perf_counter()
        fn(run)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--crf", type=int, default=23)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--duration", type=float, default=40.0)
    ap.add_argument("--runs", type=int, default=3, help="runs of each side (the median)")
    args = ap.parse_args()
    import imageio_ffmpeg

    exe = imageio_ffmpeg.get_ffmpeg_exe()
    cores = worker_count(0)
    manifest = sample_manifest(args.videos, args.duration)
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
        x264 = ["-c:v", "libx264", "-crf", str(args.crf), "-preset", args.preset]
        x264 += ["-pix_fmt", "yuv420p"]
        rows = []
        for mode, codec in (("reencode", x264), ("copy", ["-c", "copy"])):

            def ours(run, mode=mode):
                build = work / f"{mode}-{run}"
                shutil.copytree(work / "base" / "ingest", build / "ingest")
                cfg = base.model_copy(update={"mode": mode})
                res = run_chunk(build, cfg, taxonomy, cores, progress=False)
                # every window is cut (the labelling rule may then drop some of ours)
                assert res.planned == len(windows)

            def per_window(run, mode=mode, codec=codec):
                out = work / f"ffmpeg-{mode}-{run}"
                out.mkdir()
                jobs = [
                    (v.path, w.start, w.end - w.start, out / f"{v.video_id}_{w.start}.mp4")
                    for v, w in windows
                ]
                ffmpeg_cut(exe, jobs, codec, cores)
                assert len(list(out.glob("*.mp4"))) == len(windows)

            baselines = {"ffmpeg per window": median_time(per_window, args.runs)}
            if mode == "reencode":

                def graph(run):
                    out = work / f"ffmpeg-graph-{run}"
                    out.mkdir()
                    by_src = [(v.path, [w for u, w in windows if u is v]) for v in videos]
                    ffmpeg_filter_graph(exe, by_src, x264, cores, out)
                    assert len(list(out.glob("*.mp4"))) == len(windows)

                baselines["ffmpeg filter graph"] = median_time(graph, args.runs)
            mine = median_time(ours, args.runs)
            for name, theirs in baselines.items():
                rows.append(
                    {
                        "mode": mode,
                        "baseline": name,
                        "ours_s": round(mine, 2),
                        "baseline_s": round(theirs, 2),
                        "ours_x_realtime": round(src_seconds / mine, 1),
                        "baseline_x_realtime": round(src_seconds / theirs, 1),
                        "ratio_baseline_over_ours": round(theirs / mine, 2),
                    }
                )
        print(f"median of {args.runs} runs each")
        print(
            f"{'mode':<9} {'baseline':<20} {'ours s':>7} {'base s':>7} {'ours xRT':>9}"
            f" {'base xRT':>9} {'ratio (base/ours)':>18}"
        )
        for r in rows:
            print(
                f"{r['mode']:<9} {r['baseline']:<20} {r['ours_s']:>7} {r['baseline_s']:>7}"
                f" {r['ours_x_realtime']:>9} {r['baseline_x_realtime']:>9}"
                f" {r['ratio_baseline_over_ours']:>18}"
            )
        print(json.dumps(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
