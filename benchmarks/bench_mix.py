"""Mixing 350,000 rows: the streaming mixer against a naive one and a plain copy.

A synthetic build (no videos) with the paper's configs at the sizes its text gives,
VQA enlarged so that `recipes/mixtures/paper_table1.yaml` yields 350,000 rows (balanced
MCQ ~68k, 10k VLM captions, ~218k VQA, doubled reasoning MCQ...), with realistic text
lengths. Three ways to produce the mixture's Parquet file, each in a fresh process so
its peak RSS (`ru_maxrss`) is its own:

- stream: `autodrive mix` (builders/mix/stage.py): record batches in, Arrow kernels,
  ParquetWriter out; the card and the class plot included;
- naive: what a first version would do: pandas reads every config whole, rows become
  Python dicts with their `messages`, upsampling repeats them, one DataFrame is written;
- copy: read every source config and write it back with pyarrow, nothing else: the
  I/O floor for these bytes;
- copy-mix: read every source config as copy does, then write the mixture's own rows
  (read from stream's file before the clock starts) in its row groups with its writer
  options: the same bytes as the mixture, so the floor of reading these sources and
  writing that file. The mixture's rows are not the sources': their `messages` repeat
  the system prompt and the question and answer text, and the upsampled rows repeat
  whole rows, so it writes more Arrow data than copy (both printed).

Printed: seconds (stage only, imports excluded on every side: see IMPORTS; and whole
process with imports), CPU seconds of the stage
(user + system, all threads: steadier than wall time on a busy machine), rows/s, peak
RSS, the ratios stream/naive and stream/copy (copy and stream: medians of `--repeat`
interleaved runs), and stream's speed as a share of copy's (and of copy-mix's). Targets:
stream under 30 s and 2 GB here (issue 5); stream at >= 0.8 of copy's speed (issue 22).
copy-mix's peak RSS includes the mixture's rows, held in memory before its clock starts.

    python benchmarks/bench_mix.py [--rows 350000] [--skip-naive] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def bench_sizes(total: int) -> dict[str, dict[str, int]]:
    """PAPER_SIZES with VQA grown (or shrunk) so the Table 1 recipe yields `total` rows."""
    from vlm_autodrive.builders.synthetic.configs import PAPER_SIZES

    sizes = {k: dict(v) for k, v in PAPER_SIZES.items()}
    mcq = sizes["mcq"]
    fixed = (
        15 * mcq["Collision"] + 2 * mcq["Near-Collision"] + mcq["Normal Driving"]
        + sum(sizes["caption_metadata"].values()) + 10_000
        + 2 * sum(sizes["reasoning_mcq"].values()) + sum(sizes["reasoning_vqa"].values())
    )  # fmt: skip
    vqa = total - fixed
    share = {"Collision": 0.05, "Near-Collision": 0.40}
    sizes["vqa"] = {k: int(vqa * f) for k, f in share.items()}
    sizes["vqa"]["Normal Driving"] = vqa - sum(sizes["vqa"].values())
    return sizes


def run_stream(build: Path) -> int:
    from vlm_autodrive.builders.mix.stage import mix
    from vlm_autodrive.resources import bundled

    res = mix(bundled("recipes", "mixtures/paper_table1.yaml"), build, force=True)
    return res.report["sides"]["train"]["written"]


def run_naive(build: Path) -> int:
    import pandas as pd

    from vlm_autodrive.builders.dataset.folder import data_path
    from vlm_autodrive.builders.mix.conversations import load_system_prompt, row_messages
    from vlm_autodrive.builders.mix.recipe import load_mixture
    from vlm_autodrive.resources import bundled

    recipe = load_mixture(bundled("recipes", "mixtures/paper_table1.yaml"))
    prompts = {
        False: load_system_prompt(recipe.conversation.system_prompt),
        True: load_system_prompt(recipe.conversation.reasoning_system_prompt),
    }
    out = []
    for comp in recipe.components:
        df = pd.read_parquet(data_path(build, comp.config, "train"))
        if comp.count is not None:
            df = df.sample(n=comp.count, random_state=recipe.seed)
        reasoning = "target" in df.columns
        for row in df.to_dict("records"):
            msgs = row_messages(row, prompts[reasoning], reasoning)
            for copy in range(comp.factor(row["label"])):
                out.append(
                    {
                        "id": f"{row['id']}:{copy}",
                        "source_id": row["id"],
                        "source_config": comp.config,
                        "copy": copy,
                        "clip_id": row["clip_id"],
                        "video_id": row["video_id"],
                        "label": row["label"],
                        "split": "train",
                        "video": row["video"],
                        "messages": msgs,
                    }
                )
    pd.DataFrame(out).to_parquet(build / "naive.parquet")
    return len(out)


def run_copy(build: Path) -> int:
    import pyarrow.parquet as pq

    rows = 0
    for path in sorted((build / "data").glob("*/train-*.parquet")):
        if path.parent.name.startswith("mix-"):
            continue
        t = pq.read_table(path)
        pq.write_table(t, build / f"copy-{path.parent.name}.parquet")
        rows += t.num_rows
    return rows


def run_copy_mix(build: Path, groups: list) -> int:
    import pyarrow.parquet as pq

    from vlm_autodrive.builders.mix.batches import MIX_SCHEMA, writer_options

    for path in sorted((build / "data").glob("*/train-*.parquet")):
        if not path.parent.name.startswith("mix-"):
            pq.read_table(path)
    with pq.ParquetWriter(build / "copy-mix.parquet", MIX_SCHEMA, **writer_options()) as w:
        for group in groups:
            w.write_table(group)
    return sum(g.num_rows for g in groups)


def _mixture_groups(build: Path) -> list:
    """The row groups of the mixture stream wrote, as tables (copy-mix writes them)."""
    import pyarrow.parquet as pq

    from vlm_autodrive.builders.dataset.folder import data_path

    pf = pq.ParquetFile(data_path(build, "mix-paper_table1", "train"))
    return [pf.read_row_group(i) for i in range(pf.metadata.num_row_groups)]


def _cpu_s() -> float:
    """CPU seconds of this process so far, all threads (user + system)."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


# What each side imports, imported before its clock starts, so that no side's figures
# include imports (`process s` still does). pandas for all: pyarrow loads it the first
# time it converts a numpy array. The stream side's lazy imports (the pipeline's key,
# the taxonomy, the plot's matplotlib) are imports too; drawing the plot is timed.
COMMON_IMPORTS = ["numpy", "pandas", "pyarrow", "pyarrow.parquet"]
IMPORTS = {
    "copy": [],
    "copy-mix": ["vlm_autodrive.builders.mix.batches", "vlm_autodrive.builders.dataset.folder"],
    "stream": [
        "vlm_autodrive.builders.mix.stage",
        "vlm_autodrive.builders.mix.report",
        "vlm_autodrive.builders.pipeline",
        "vlm_autodrive.builders.core.taxonomy",
        "vlm_autodrive.resources",
        "matplotlib.figure",
        "matplotlib.backends.backend_agg",
    ],
    "naive": [
        "vlm_autodrive.builders.dataset.folder",
        "vlm_autodrive.builders.mix.conversations",
        "vlm_autodrive.builders.mix.recipe",
        "vlm_autodrive.resources",
    ],
}


def child(mode: str, build: Path) -> None:
    import importlib

    for module in COMMON_IMPORTS + IMPORTS[mode]:
        importlib.import_module(module)
    if mode == "copy-mix":
        groups = _mixture_groups(build)
        run = {"copy-mix": lambda b: run_copy_mix(b, groups)}
    else:
        run = {"stream": run_stream, "naive": run_naive, "copy": run_copy}
    t0, c0 = time.perf_counter(), _cpu_s()
    rows = run[mode](build)
    t1, c1 = time.perf_counter(), _cpu_s()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    print(json.dumps({"rows": rows, "stage_s": t1 - t0, "cpu_s": c1 - c0, "peak_rss_mib": peak}))


def measure(mode: str, build: Path) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(build)], capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(f"{mode} failed:\n{out.stderr}")
    return {"mode": mode, "process_s": wall, **json.loads(out.stdout.strip().splitlines()[-1])}


def _median(runs: list[dict]) -> dict:
    """One result whose every figure is the median of those figures over `runs`."""
    import statistics

    out = dict(runs[0])
    for k in ("stage_s", "cpu_s", "process_s", "peak_rss_mib"):
        out[k] = statistics.median(r[k] for r in runs)
    return out


def _written_bytes(build: Path, mixture: Path) -> str:
    """What copy and stream write: Arrow bytes in memory, Parquet bytes before and after
    compression (summed over column chunks), and whether copy-mix wrote stream's bytes."""
    import hashlib

    import pyarrow.parquet as pq

    def sizes(paths: list[Path]) -> tuple[int, int, int]:
        arrow = raw = packed = 0
        for path in paths:
            arrow += pq.read_table(path).nbytes
            meta = pq.ParquetFile(path).metadata
            for g in range(meta.num_row_groups):
                for c in range(meta.num_columns):
                    chunk = meta.row_group(g).column(c)
                    raw += chunk.total_uncompressed_size
                    packed += chunk.total_compressed_size
        return arrow, raw, packed

    copies = sorted(build.glob("copy-[!m]*.parquet"))
    same = hashlib.sha256((build / "copy-mix.parquet").read_bytes()).digest() == (
        hashlib.sha256(mixture.read_bytes()).digest()
    )
    lines = []
    for name, paths in (("copy", copies), ("stream", [mixture])):
        arrow, raw, packed = sizes(paths)
        lines.append(
            f"{name} writes {arrow / 2**20:.0f} MiB of Arrow data: {raw / 2**20:.0f} MiB of "
            f"Parquet pages, {packed / 2**20:.0f} MiB compressed"
        )
    lines.append(f"copy-mix wrote the mixture's bytes: {'yes' if same else 'NO'}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=350_000, help="rows the mixture should have")
    ap.add_argument("--skip-naive", action="store_true", help="the naive run takes minutes")
    ap.add_argument("--repeat", type=int, default=3, help="runs of copy and stream (median)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    from vlm_autodrive.builders.dataset.folder import data_path
    from vlm_autodrive.builders.synthetic.configs import write_synthetic_configs

    with tempfile.TemporaryDirectory(prefix="bench-mix-") as tmp:
        build = Path(tmp) / "build"
        t0 = time.perf_counter()
        write_synthetic_configs(build, bench_sizes(args.rows), test_per_class=0)
        source_rows = sum(sum(v.values()) for v in bench_sizes(args.rows).values())
        data = sum(p.stat().st_size for p in (build / "data").rglob("*.parquet"))
        print(
            f"synthetic build: {source_rows:,} source rows, {data / 2**20:.0f} MiB of Parquet "
            f"({time.perf_counter() - t0:.1f} s to write)"
        )
        modes = ["copy", "stream", "copy-mix"]  # copy-mix writes what stream wrote
        runs: dict[str, list[dict]] = {m: [] for m in modes}
        for _ in range(args.repeat):  # interleaved, so a busy spell hits both alike
            for m in modes:
                runs[m].append(measure(m, build))
        results = {m: _median(rs) for m, rs in runs.items()}
        for m, rs in runs.items():
            print(f"{m} runs, stage s: " + ", ".join(f"{r['stage_s']:.2f}" for r in rs))
        if not args.skip_naive:
            results["naive"] = measure("naive", build)
        out = data_path(build, "mix-paper_table1", "train")
        print(f"mixture file: {out.stat().st_size / 2**20:.0f} MiB")
        print(_written_bytes(build, out))
    print(f"median of {args.repeat} runs each (naive: 1); cpu s: user + system, all threads")
    print(
        f"{'mode':<8} {'rows':>9} {'stage s':>8} {'cpu s':>7} {'process s':>9} {'rows/s':>9} "
        f"{'peak MiB':>9}"
    )
    for r in results.values():
        print(
            f"{r['mode']:<8} {r['rows']:>9,} {r['stage_s']:>8.2f} {r['cpu_s']:>7.2f} "
            f"{r['process_s']:>9.2f} {r['rows'] / r['stage_s']:>9,.0f} {r['peak_rss_mib']:>9.0f}"
        )
    s = results["stream"]
    for other in ("naive", "copy", "copy-mix"):
        if other in results:
            o = results[other]
            print(
                f"stream vs {other}: time x{s['stage_s'] / o['stage_s']:.2f}, "
                f"cpu x{s['cpu_s'] / o['cpu_s']:.2f}, "
                f"peak memory x{s['peak_rss_mib'] / o['peak_rss_mib']:.2f}"
            )
    c = results["copy"]
    speed, cpu_speed = c["stage_s"] / s["stage_s"], c["cpu_s"] / s["cpu_s"]
    print(
        f"stream speed as a share of copy's (issue 22: >= 0.8): {speed:.2f} by time, "
        f"{cpu_speed:.2f} by cpu"
    )
    m = results["copy-mix"]
    print(
        f"stream speed as a share of copy-mix's (the mixture's own bytes): "
        f"{m['stage_s'] / s['stage_s']:.2f} by time, {m['cpu_s'] / s['cpu_s']:.2f} by cpu"
    )
    ok = s["process_s"] < 30 and s["peak_rss_mib"] < 2048
    print(
        f"target (stream: {s['rows']:,} rows in < 30 s, peak RSS < 2 GiB): "
        + ("met" if ok else "NOT met")
    )


if __name__ == "__main__":
    main()
