"""Chunking throughput: this project against the ffmpeg command line, in one run.

Two kinds of 1280x720 30 fps 40 s source, cut into the paper's windows (6 s every 5.5 s:
7 clips a video): `drawn`, the synthetic dashcam videos of `autodrive sample` (a 1 s
GOP), and `noisy`, ffmpeg's testsrc2 with temporal noise on every frame (a 2 s GOP),
which x264 encodes several times slower, as it does real footage. Each is cut by:
- `reencode` here: one decode pass per source, frame-exact H.264 (one x264 thread per
  encoder, `chunk.encoder_threads`), one process per core;
- `smart` here: frame exact, re-encoding only the frames before each window's first
  keyframe (and after its last whole B-frame group), stream-copying the rest;
- `copy` here (stream copy);
- the strongest ffmpeg baseline: one ffmpeg process per source that decodes it once and
  encodes every window through a `split` + `trim` filter graph (`-filter_complex`, one
  output per window), as many sources at once as there are cores: with ffmpeg's own x264
  threads (auto), and with `-threads 1` per encoder (ours' x264 settings); each side's
  ratio is against the one of the two that used fewer CPU seconds in the run;
- with `--per-window`, one `ffmpeg -ss S -i SRC -t L -c:v libx264` per window too.
Each side runs `--runs` times (default 3); it prints the median wall and CPU seconds
(this process and its children: the cores a side keeps busy), source seconds per
core-second, and each side's speed against the baseline and against `reencode` (CPU
seconds of theirs / ours). It checks that `smart` gives the clips, frame counts and
times of `reencode`, and prints how many windows it had to re-encode, and why.

    python benchmarks/bench_chunk.py [--videos 2] [--duration 40] [--runs 3] [--crf 23]
        [--kinds drawn,noisy] [--per-window] [--encoder-threads 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vlm_autodrive.builders.clips.stage import run_chunk
from vlm_autodrive.builders.clips.windows import plan_windows
from vlm_autodrive.builders.core.sections import ChunkConfig, worker_count
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.records import read_videos
from vlm_autodrive.builders.ingest.stage import run_ingest
from vlm_autodrive.builders.synthetic.sample import generate_sample

CACHE = Path(tempfile.gettempdir()) / "vlm-autodrive-bench-videos"
# The single-pass ffmpeg baseline twice: with ffmpeg's x264 threads (auto), and with one
# thread per encoder, the x264 settings of ours (chunk.encoder_threads: 1). Ratios are
# against the one that used fewer CPU seconds in the run.
BASELINES = ("ffmpeg filter graph", "ffmpeg graph 1 thr")


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


def noisy_manifest(videos: int, duration: float, gop: int = 60) -> Path:
    """The manifest of `videos` noisy 1280x720 30 fps sources: ffmpeg's testsrc2 (moving
    pattern, colour bars, a clock) with temporal sensor-like noise on every frame, x264
    crf 20 with a keyframe every `gop` frames, as a dashcam records. x264 spends several
    times longer on these than on the drawn sample videos, as it does on real footage."""
    import imageio_ffmpeg

    src_dir = CACHE / f"noisy-{videos}x{duration:g}s-g{gop}"
    manifest = src_dir / "manifest.jsonl"
    if not manifest.exists():
        (src_dir / "videos").mkdir(parents=True, exist_ok=True)
        rows = []
        for i in range(videos):
            out = src_dir / "videos" / f"noisy{i}.mp4"
            pattern = f"testsrc2=size=1280x720:rate=30:duration={duration:g}"
            cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y"]
            cmd += ["-f", "lavfi", "-i", pattern, "-vf", f"noise=alls={12 + 4 * i}:allf=t+u"]
            cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-g", str(gop)]
            cmd += ["-pix_fmt", "yuv420p", str(out)]
            subprocess.run(cmd, check=True)
            rows.append({"video_id": f"noisy{i}", "path": str(out), "label": "Normal Driving"})
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its finished children so far:
    the worker processes of a chunk run and the ffmpeg processes, once they have exited."""
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure(fn, runs: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds of `runs` calls of `fn(run)`."""
    walls, cpus = [], []
    for run in range(runs):
        c, t = cpu_seconds(), time.perf_counter()
        fn(run)
        walls.append(time.perf_counter() - t)
        cpus.append(cpu_seconds() - c)
    return statistics.median(walls), statistics.median(cpus)


def bench_kind(kind: str, manifest: Path, args, exe: str, cores: int, work: Path) -> list[dict]:
    """Every side on the sources of one manifest: [{side, wall_s, cpu_s, ...}]."""
    taxonomy = load_taxonomy()
    base_dir = work / kind / "base"
    run_ingest(manifest, base_dir, taxonomy, progress=False)
    videos = read_videos(base_dir / "ingest" / "videos.parquet")
    windows = [(v, w) for v in videos for w in plan_windows(v.duration, 6.0, 5.5)]
    src_seconds = sum(v.duration for v in videos)
    base = ChunkConfig(
        window=6.0,
        stride=5.5,
        ensure_event_clip=False,
        crf=args.crf,
        preset=args.preset,
        encoder_threads=args.encoder_threads,
    )
    x264 = ["-c:v", "libx264", "-crf", str(args.crf), "-preset", args.preset]
    x264 += ["-pix_fmt", "yuv420p"]
    print(
        f"{kind}: {len(videos)} videos, {videos[0].width}x{videos[0].height} "
        f"{videos[0].fps:g} fps, {src_seconds:g} s of source, {len(windows)} windows of 6 s",
        flush=True,
    )
    tables = {}

    def ours(mode):
        def run(r):
            build = work / kind / f"{mode}-{r}"
            shutil.copytree(base_dir / "ingest", build / "ingest")
            res = run_chunk(
                build, base.model_copy(update={"mode": mode}), taxonomy, cores, progress=False
            )
            assert res.planned == len(windows)  # every window is cut
            tables[mode] = (build, res)

        return run

    def graph(threads: list[str]):
        def run(r):
            out = work / kind / f"ffmpeg-graph{''.join(threads)}-{r}"
            out.mkdir()
            by_src = [(v.path, [w for u, w in windows if u is v]) for v in videos]
            ffmpeg_filter_graph(exe, by_src, [*x264, *threads], cores, out)
            assert len(list(out.glob("*.mp4"))) == len(windows)

        return run

    # ffmpeg's own x264 threads (auto: 3 on 2 cores), and one thread per encoder as ours
    sides = {BASELINES[0]: graph([]), BASELINES[1]: graph(["-threads", "1"])}
    if args.per_window:

        def per_window(r):
            out = work / kind / f"ffmpeg-window-{r}"
            out.mkdir()
            jobs = [
                (v.path, w.start, w.end - w.start, out / f"{v.video_id}_{w.start}.mp4")
                for v, w in windows
            ]
            ffmpeg_cut(exe, jobs, x264, cores)

        sides["ffmpeg per window"] = per_window
    for mode in ("reencode", "smart", "copy"):
        sides[mode] = ours(mode)
    rows = []
    for side, fn in sides.items():
        wall, cpu = measure(fn, args.runs)
        rows.append(
            {
                "kind": kind,
                "side": side,
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "src_s_per_core_s": round(src_seconds / cpu, 2),
            }
        )
    by = {r["side"]: r for r in rows}
    strongest = min(BASELINES, key=lambda b: by[b]["cpu_s"])
    for r in rows:
        r["x_baseline"] = round(by[strongest]["cpu_s"] / r["cpu_s"], 2)
        r["x_reencode"] = round(by["reencode"]["cpu_s"] / r["cpu_s"], 2)
    # smart is frame exact: the same clips, frame counts and times as reencode's
    re_res, (sb, sm_res) = tables["reencode"][1], tables["smart"]
    same = [(c.clip_id, c.start, c.end, c.frames) for c in re_res.clips] == [
        (c.clip_id, c.start, c.end, c.frames) for c in sm_res.clips
    ]
    decoded = all(_packets(sb / c.path) == c.frames for c in sm_res.clips)
    modes = dict(sorted(Counter(c.cut_mode for c in sm_res.clips).items()))
    fallback = json.loads((sb / "chunk/summary.json").read_text())["smart_fallback"]
    by["smart"].update(frame_exact=same and decoded, smart_modes=modes, smart_fallback=fallback)
    # copy re-encodes the windows a keyframe would stretch past max_copy_stretch (1 s)
    copy_modes = Counter(c.cut_mode for c in tables["copy"][1].clips)
    by["copy"].update(copy_modes=dict(sorted(copy_modes.items())))
    return rows


def _packets(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(c.streams.video[0]) if p.size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--crf", type=int, default=23)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--encoder-threads", type=int, default=1, help="ours: chunk.encoder_threads")
    ap.add_argument("--duration", type=float, default=40.0)
    ap.add_argument("--runs", type=int, default=3, help="runs of each side (the median)")
    ap.add_argument("--kinds", default="drawn,noisy", help="drawn, noisy or both")
    ap.add_argument("--per-window", action="store_true", help="also one ffmpeg per window")
    args = ap.parse_args()
    import imageio_ffmpeg

    exe = imageio_ffmpeg.get_ffmpeg_exe()
    cores = worker_count(0)
    print(
        f"{cores} cores, x264 crf {args.crf} preset {args.preset}, ours at "
        f"{args.encoder_threads} x264 thread(s) a clip, median of {args.runs} runs\n"
    )
    work = Path(tempfile.mkdtemp(prefix="bench-chunk-"))
    rows = []
    try:
        for kind in args.kinds.split(","):
            make = {"drawn": sample_manifest, "noisy": noisy_manifest}[kind]
            rows += bench_kind(kind, make(args.videos, args.duration), args, exe, cores, work)
        print(
            f"\n{'kind':<6} {'side':<20} {'wall s':>7} {'CPU s':>7} {'src s/core s':>13}"
            f" {'x baseline':>11} {'x reencode':>11}"
        )
        for r in rows:
            print(
                f"{r['kind']:<6} {r['side']:<20} {r['wall_s']:>7} {r['cpu_s']:>7}"
                f" {r['src_s_per_core_s']:>13} {r['x_baseline']:>11} {r['x_reencode']:>11}"
            )
        for r in rows:
            if r["side"] == "smart":
                print(
                    f"{r['kind']}: smart frame exact (same clips, frames and times as reencode):"
                    f" {r['frame_exact']}; clips by how they were cut {r['smart_modes']};"
                    f" re-encoded by reason {r['smart_fallback']}"
                )
            if r["side"] == "copy":
                print(
                    f"{r['kind']}: copy clips by how they were cut {r['copy_modes']} (a window"
                    " a keyframe would stretch by more than max_copy_stretch is re-encoded)"
                )
        print(json.dumps(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
