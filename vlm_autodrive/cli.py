"""The `autodrive` command line. Each subcommand is one stage, re-runnable on its own.

Exit codes: one table for every command (vlm_autodrive/exit_codes.py, printed by
`autodrive --help`): 0 done; 3 done, but some inputs were rejected or some samples
failed (listed in the rejects files and the `failures` config); 2 bad arguments, recipe,
manifest, or a version already published; 4 a model server or the Hub could not be
reached; 1 anything unexpected; 130 interrupted (^C), 143 terminated (SIGTERM, as
`timeout`, `docker stop`, Kubernetes and Slurm send): both keep the finished work, and
the same command resumes. A bad-input message begins `autodrive: `, an error's `error: `.

Global options (before or after the command): `-v/--verbose` (debug logging; commands
that list files list them all), `-q/--quiet` (no progress bars, warnings and errors
only), `--log-file PATH` (Python logging: the command line, library logs, the failure
and its exit code, the traceback of an unexpected error or a worker process's death).

Over 400 lines: the argument parsers of every subcommand and their thin handlers, kept
in one place so `autodrive --help` and the README's command table are checked side by
side; the handlers move into their stage packages when they grow. The Python API
(vlm_autodrive/api.py) runs the same stage functions.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from vlm_autodrive.exit_codes import (
    BAD_INPUT,
    INTERRUPTED,
    REJECTS,
    TERMINATED,
    UNAVAILABLE,
    UNEXPECTED,
    exit_code_table,
)
from vlm_autodrive.verbosity import LOG, Verbosity

EXIT_REJECTS = REJECTS
EXIT_BAD_INPUT = BAD_INPUT
EXIT_UNAVAILABLE = UNAVAILABLE
EXIT_INTERRUPTED = INTERRUPTED
EXIT_TERMINATED = TERMINATED


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stopped as ^C stops (every `finally` and `except KeyboardInterrupt`
    cleanup runs), but the exit code is 143, the shell's for SIGTERM."""


def _raise_terminated(signum, frame) -> None:
    if _starting_a_process(frame):
        # An exception raised inside os.fork's at-fork hooks (logging's lock release runs
        # there) is printed and dropped, and the run would go on to exit 0: send the
        # signal again once the fork is over.
        import os
        import threading

        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()
        return
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM: let cleanup finish
    raise Terminated()


def _starting_a_process(frame) -> bool:
    """Whether the interrupted frame is inside multiprocessing's fork of a worker."""
    while frame is not None:
        if frame.f_code.co_name == "_launch" and frame.f_code.co_filename.endswith("popen_fork.py"):
            return True
        frame = frame.f_back
    return False


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    verbosity = Verbosity(args)
    try:
        verbosity.__enter__()
    except (ValueError, OSError) as e:  # --log-file: a folder, or under a file
        return _report_failure(e)
    try:
        LOG.info("command: autodrive %s", " ".join(sys.argv[1:] if argv is None else argv))
        code = _run(args)
        LOG.info("exit code %d", code)
        return code
    finally:
        verbosity.__exit__(None, None, None)


def _run(args) -> int:
    """The handler, its exceptions mapped to the exit code table (exit_codes.py)."""
    from concurrent.futures.process import BrokenProcessPool

    from vlm_autodrive.builders.generate.backends.common import BackendUnavailable
    from vlm_autodrive.builders.release.hub_ids import HubUnreachable

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        return args.func(args)
    except (BackendUnavailable, HubUnreachable) as e:
        _print_error(e)
        return EXIT_UNAVAILABLE
    except (ValueError, OSError) as e:
        return _report_failure(e)
    except KeyboardInterrupt as e:
        what = "interrupted (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        print(f"{what}: finished work is kept; run the same command to resume", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED
    except BrokenProcessPool:
        # A worker was killed (the kernel's OOM killer, `kill -9`): the machine's, not the
        # inputs'. The stages keep what they finished (chunk: each video as it comes), so
        # the same command resumes; the traceback goes to --log-file only.
        LOG.exception("a worker process died (exit 1)", extra={"log_file_only": True})
        print(f"error: {WORKER_DIED}", file=sys.stderr)
        return UNEXPECTED
    except Exception:
        LOG.exception("unexpected error (exit 1)", extra={"log_file_only": True})
        raise
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


WORKER_DIED = (
    "a worker process died (killed, or out of memory?): the work finished so far is kept; "
    "run the same command again to resume"
)


def _report_failure(e: ValueError | OSError) -> int:
    """Print `e` as the exit code table says and return its code: bad input (2) for a
    ValueError (InputError and the others name the file and key or line), a missing
    file, a folder where a file goes or a file where a folder goes; else the machine's
    error (1: disk full, permissions)."""
    in_the_way = _file_in_the_way(e) if isinstance(e, OSError) else None
    if in_the_way:
        _print_bad_input(ValueError(in_the_way))
        return EXIT_BAD_INPUT
    if isinstance(e, (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        _print_bad_input(e)
        return EXIT_BAD_INPUT
    _print_error(e)
    return UNEXPECTED


# The functions that make folders: an error raised in one of them is about preparing an
# output path (pathlib's Path.mkdir, os.makedirs, which shutil.copytree also calls). By
# name alone: pathlib's module moved between Python versions (pathlib/_local.py in 3.13).
_MAKES_FOLDERS = {"mkdir", "makedirs"}


def _file_in_the_way(e: OSError) -> str | None:
    """When `e` is making a folder fail because a file is where the folder, or one of its
    parents, goes (`--build FILE`, `--out FILE`, `--html FILE/page.html`): a message
    naming that file. None for anything else: a FileExistsError of an exclusive create or
    a link is the machine's (a race, a stale file), not the user's."""
    if not isinstance(e, (FileExistsError, NotADirectoryError)) or not e.filename:
        return None
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code if tb is not None else None
    if code is None or code.co_name not in _MAKES_FOLDERS:
        return None
    wanted = Path(e.filename)
    for path in (wanted, *wanted.parents):
        if path.exists() and not path.is_dir():
            also = "" if path == wanted else f" (to hold {wanted})"
            return (
                f"{path}: is a file, but a folder is needed there{also}; "
                "move it, or choose another path"
            )
    return None


def _progress(args) -> bool:
    """Whether a handler shows its progress bars (not with -q)."""
    return not getattr(args, "quiet", False)


def _print_error(e: BaseException) -> None:
    print(f"error: {e}", file=sys.stderr)
    LOG.info("error: %s", e, extra={"log_file_only": True})


def _print_bad_input(e: BaseException) -> None:
    if isinstance(e, OSError) and e.filename is not None:  # a folder where a file goes, ...
        text = f"{e.filename}: {e.strerror}"
    else:
        text = str(e) or type(e).__name__
    from vlm_autodrive.builders.core.terminal import printable

    for line in text.splitlines() or [text]:  # a message may quote a file's own text
        print(f"autodrive: {printable(line)}", file=sys.stderr)
    LOG.info("bad input: %s", text, extra={"log_file_only": True})


def _refuse_release(build: Path) -> None:
    from vlm_autodrive.builders.release.readonly import refuse_release_folder

    refuse_release_folder(build)


def _locked(build: Path, *, create: bool = True):
    """The build folder's lock (builders/core/lock.py), named after this command line."""
    from vlm_autodrive.builders.core.lock import build_lock

    _refuse_release(build)  # a published release is read-only (before the lock)
    command = " ".join(["autodrive", *sys.argv[1:]])
    return build_lock(build, command, create=create)


class _Parser(argparse.ArgumentParser):
    """argparse with the table's bad-input message: `autodrive: command line: ...`
    first, then the usage (exit 2)."""

    def error(self, message: str):
        self.exit(2, f"autodrive: command line: {message}\n{self.format_usage()}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="autodrive",
        description="Dashcam event videos -> clips and supervision for video VLMs.",
        epilog="Run `autodrive COMMAND --help` for each command.\nQuick start: "
        "`autodrive build recipes/quickstart.yaml`.\n\n" + exit_code_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from vlm_autodrive import __version__

    p.add_argument("--version", action="version", version=f"autodrive {__version__}")
    _global_options(p, None)
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    s = sub.add_parser(
        "sample",
        help="generate synthetic dashcam videos and a manifest",
        description="Write DIR/videos/*.mp4 (H.264, moving road scene, vehicles as shapes; "
        "Collision = contact at the event time, Near-Collision = a close pass, Normal = "
        "neither) and DIR/manifest.jsonl with realistic metadata. Deterministic for a seed.",
    )
    s.add_argument("--videos", type=int, default=12, help="number of videos (default 12)")
    s.add_argument("--out", type=Path, required=True, help="output folder")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--duration", type=float, default=20.0, help="seconds per video")
    s.add_argument("--width", type=int, default=320)
    s.add_argument("--height", type=int, default=180)
    s.add_argument("--fps", type=float, default=30.0)
    s.add_argument("--gop", type=int, default=30, help="keyframe interval in frames")
    s.set_defaults(func=_cmd_sample)

    a = sub.add_parser(
        "adapt",
        help="convert public annotations (nexar, dota, ccd, mmau) to a manifest",
        description="Turn a public dataset's annotation file into a manifest in the "
        "project's schema. The label mapping is explicit configuration: see "
        "recipes/adapters/NAME.yaml and recipes/adapters/README.md.",
    )
    a.add_argument("adapter", help="nexar, dota, ccd or mmau")
    a.add_argument("source", type=Path, help="the annotation file or folder")
    a.add_argument("--out", type=Path, required=True, help="manifest to write (.jsonl)")
    a.add_argument("--config", type=Path, help="mapping YAML (default: the bundled one)")
    a.add_argument("--video-root", type=Path, help="folder holding the videos")
    a.add_argument("--rejects", type=Path, help="rejects file (default: OUT.rejects.jsonl)")
    a.set_defaults(func=_cmd_adapt)

    f = sub.add_parser(
        "frames-to-video",
        help="encode folders of numbered frames (DoTA, MM-AU) as H.264 mp4s",
        description="Turn every folder of numbered frames (.jpg/.png) at or below SRC_DIR "
        "into OUT/<folder>.mp4 (a last `images` folder dropped from the name): H.264, "
        "yuv420p, the given frame rate, frames in numeric order. Same frames and settings, "
        "same bytes. Resumable: a video whose mp4 carries the same stamp is skipped. A gap "
        "in the numbering or an unreadable frame rejects the folder, naming the file.",
    )
    f.add_argument("src", type=Path, metavar="SRC_DIR", help="folder of frame folders")
    f.add_argument("--out", type=Path, required=True, help="folder for the mp4s")
    f.add_argument("--fps", type=float, required=True, help="frame rate (DoTA 10, MM-AU 30)")
    f.add_argument("--workers", type=int, default=0, help="processes (0 = one per core)")
    f.add_argument("--crf", type=int, default=18, help="x264 quality (default 18)")
    f.add_argument("--preset", default="veryfast", help="x264 preset (default veryfast)")
    f.add_argument("--rejects", type=Path, help="rejects file (default: OUT/rejects.jsonl)")
    f.set_defaults(func=_cmd_frames_to_video)

    i = sub.add_parser(
        "ingest",
        help="validate a manifest and probe its videos",
        description="Read a manifest (.jsonl, .csv, .parquet), validate every row, probe "
        "every video, and write BUILD/ingest/videos.parquet and rejects.jsonl.",
    )
    i.add_argument("manifest", type=Path)
    i.add_argument("--build", type=Path, required=True, help="build folder")
    i.add_argument("--taxonomy", type=Path, help="taxonomy YAML (default: bundled)")
    i.add_argument("--workers", type=int, default=0, help="processes (0 = one per core)")
    i.add_argument(
        "--hash-videos",
        action="store_true",
        help="no effect: ingest always fingerprints each video by its bytes (sha256) now",
    )
    _source_options(i)
    i.add_argument(
        "--duplicates",
        choices=["reject", "group"],
        default="reject",
        help="byte-identical files under different ids: reject the later rows (default), "
        "or group them on one side of the train/test split",
    )
    i.add_argument(
        "--near-duplicates",
        choices=["group", "off"],
        default="group",
        help="record each file's perceptual signature so that re-encoded or resized copies "
        "under different ids land on one side of the train/test split (default), or off",
    )
    i.set_defaults(func=_cmd_ingest)

    c = sub.add_parser(
        "chunk",
        help="cut ingested videos into labelled sliding-window clips",
        description="Cut every ingested video into windows (settings from --recipe, "
        "overridable here), label each clip from its actual cut times, and write "
        "BUILD/clips/ and BUILD/chunk/clips.parquet. Resumable: re-running skips "
        "finished videos.",
    )
    c.add_argument("--build", type=Path, required=True, help="build folder (after ingest)")
    c.add_argument("--recipe", type=Path, help="build recipe whose `chunk:` section to use")
    c.add_argument("--taxonomy", type=Path, help="taxonomy YAML (default: bundled)")
    _chunk_overrides(c)
    c.set_defaults(func=_cmd_chunk)

    b = sub.add_parser(
        "build",
        help="run a whole build recipe (sample, ingest, chunk, rule splits, model splits)",
        description="Run every stage a build recipe names, each resuming or skipping "
        "finished work, and print a summary.",
    )
    b.add_argument("recipe", type=Path, help="e.g. recipes/quickstart.yaml")
    b.add_argument("--build", type=Path, help="override the recipe's build_dir")
    b.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key, e.g. --set generate.models.text.backend=vllm "
        "(repeatable; values are YAML)",
    )
    b.add_argument(
        "--dry-run",
        action="store_true",
        help="send nothing, write nothing: plan every stage as the build would (in memory) "
        "and print what ingest, chunk and the rule splits would change and, per model "
        "split, the requests cached and to send, prompt and output tokens and, with a "
        "throughput in the recipe, GPU-hours",
    )
    b.add_argument(
        "--retry-failed",
        action="store_true",
        help="re-send only the requests of the last build's error and parse failures",
    )
    _source_options(b)
    _chunk_overrides(b)
    b.set_defaults(func=_cmd_build)

    m = sub.add_parser(
        "mix",
        help="mix configs into SFT conversations by a mixture recipe (per-class upsampling)",
        description="Draw rows from the build's configs as a mixture recipe says "
        "(recipes/mixtures/*.yaml: per config a count, a fraction, all rows, or per-class "
        "upsampling factors), turn them into conversations (`messages`: the recipe's system "
        "prompt, the clip as a video part, the question; the answer, or the "
        "<think>...</think> <answer>...</answer> form for reasoning rows) and write them as "
        "the config mix-NAME of the build folder. Prints rows per component and class "
        "against what the recipe asked and plots the class distribution before and after "
        "upsampling (BUILD/mix/NAME/class_distribution.png); both go into the dataset card. "
        "Re-running with unchanged recipe, rows and prompts does nothing.",
    )
    m.add_argument("recipe", type=Path, help="e.g. recipes/mixtures/paper_table1.yaml")
    m.add_argument("--build", type=Path, required=True, help="build folder (after build)")
    m.add_argument("--force", action="store_true", help="mix again even if up to date")
    m.set_defaults(func=_cmd_mix)

    pub = sub.add_parser(
        "publish",
        help="publish a build folder as a versioned dataset (Hub repo or local folder)",
        description="Release the build folder as version X.Y.Z: its configs, the clips "
        "their rows use, the train/test assignment, mixture plots, and a card, provenance "
        "and changelog (rows added, removed and changed per config since the previous "
        "version) written for the release. To the Hub: refuses an existing tag first, "
        "creates the dataset repo if needed, uploads resumably (files already there are "
        "not sent again; re-run the same command to resume), then tags vX.Y.Z once every "
        "file is committed. The token is read as huggingface_hub reads it (HF_TOKEN or "
        "`hf auth login`) and never printed. --to FOLDER writes FOLDER/vX.Y.Z/ instead, "
        "with the same layout, loadable with datasets.load_dataset.",
    )
    pub.add_argument("build", type=Path, help="build folder")
    pub.add_argument("--repo", help="Hub dataset repo ORG/NAME (with --to: for the card)")
    pub.add_argument("--version", required=True, help="semantic version X.Y.Z (tag vX.Y.Z)")
    pub.add_argument("--to", type=Path, metavar="FOLDER", help="local target instead of the Hub")
    pub.add_argument(
        "--dry-run", action="store_true", help="list every step and file; no network, no writes"
    )
    pub.add_argument("--private", action="store_true", help="create the Hub repo private")
    pub.add_argument(
        "-v",
        "--verbose",
        dest="all_files",
        action="store_true",
        help="list every file (default: counts, size and the first few per step)",
    )
    pub.add_argument(
        "--license",
        default="other",
        help="license id for the card (default: other, the source videos' terms)",
    )
    pub.add_argument(
        "--previous",
        type=Path,
        metavar="FOLDER",
        help="release folder to compare with (default: the newest earlier version)",
    )
    pub.add_argument(
        "--allow-older",
        action="store_true",
        help="publish a version lower than the newest release (a fix of an older line)",
    )
    pub.set_defaults(func=_cmd_publish)

    from vlm_autodrive.builders.dataset.show import add_show_parser

    add_show_parser(sub)  # `autodrive show BUILD CONFIG [--html OUT]`

    from vlm_autodrive.builders.audit.cli import add_audit_parser

    add_audit_parser(sub)  # `autodrive audit BUILD`

    from vlm_autodrive.trainer.eval.cli import add_eval_parser

    add_eval_parser(sub)  # `autodrive eval ...` and `autodrive eval compare ...`

    from vlm_autodrive.trainer.train.cli import add_train_parser

    add_train_parser(sub)

    from vlm_autodrive.trainer.rl.cli import add_export_rl_parser

    add_export_rl_parser(sub)

    from vlm_autodrive.builders.export import FORMATS

    ex = sub.add_parser(
        "export",
        help="write a config for another trainer or evaluator (LLaMA-Factory, lmms-eval, ...)",
        description="Write a config of a build or release folder (or a Hub dataset "
        "owner/name[@rev]) in the format another tool reads: llamafactory (sharegpt JSON "
        "with <video> tags and dataset_info.json), lmms-eval (a task folder for "
        "--include_path, scored as `autodrive eval` scores), cosmos-reason (a datasets "
        "folder with a `conversations` JSON column), llava (LLaVA-style JSON for Qwen-VL's "
        "finetune scripts). TRL needs no export: pass vlm_autodrive.trainer.VideoSFTCollator "
        "to trl.SFTTrainer.",
    )
    ex.add_argument("source", help="build or release folder, or a Hub id owner/name[@rev]")
    ex.add_argument("--format", required=True, choices=list(FORMATS))
    ex.add_argument("--out", type=Path, required=True, help="output folder")
    ex.add_argument(
        "--config",
        help="config to export (default: the folder's one mix-* config; lmms-eval: mcq)",
    )
    ex.add_argument("--split", help="split to export (default: train; lmms-eval: test)")
    ex.add_argument(
        "--clip-root",
        help="the source folder's path on the machines that train or evaluate (default: "
        "where it is here)",
    )
    ex.set_defaults(func=_cmd_export)
    for command in sub.choices.values():  # also accepted after the command's name
        _global_options(command, argparse.SUPPRESS)
    sub.choices["show"].set_defaults(func=_cmd_show)  # Hub ids resolved first
    sub.choices["export-rl"].set_defaults(func=_cmd_export_rl)
    sub.choices["eval"].set_defaults(func=_cmd_eval)  # `eval compare` keeps its own
    return p


def _global_options(p: argparse.ArgumentParser, default) -> None:
    """-v, -q and --log-file; on a command's parser with `default` SUPPRESS, so that a
    flag given before the command is not reset by the command's parser. A command with
    its own -v (publish: list every file) keeps it; the global -v implies it."""
    flags = (
        (("-v", "--verbose"), "debug logging; commands that list files list them all"),
        (("-q", "--quiet"), "no progress bars; log warnings and errors only"),
    )
    for names, text in flags:
        own = [n for n in names if n in p._option_string_actions]
        if own:
            continue
        p.add_argument(*names, action="store_true", default=default or False, help=text)
    p.add_argument(
        "--log-file",
        type=Path,
        metavar="PATH",
        default=default,
        help="also log to PATH: the command, library logs, the failure and its exit code",
    )


def _source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prune-missing",
        action="store_true",
        help="drop the videos whose file is missing and delete their clips (without it, a "
        "missing file stops the run before anything changes: an unmounted disk deletes nothing)",
    )


def _chunk_overrides(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("chunk settings (override the recipe)")
    g.add_argument("--window", type=float, help="clip length, seconds")
    g.add_argument("--stride", type=float, help="seconds between window starts")
    g.add_argument("--margin", type=float, help="context around the event moment, seconds")
    g.add_argument(
        "--mode",
        choices=["copy", "reencode", "smart"],
        help="stream copy, frame exact, or frame exact re-encoding only up to a keyframe "
        "(smart, the default)",
    )
    g.add_argument("--crf", type=int, help="x264 quality of re-encoded frames (lower = better)")
    g.add_argument("--preset", help="x264 preset of re-encoded frames")
    g.add_argument("--ambiguous", choices=["drop", "event"], help="clips near the event")
    g.add_argument("--workers", type=int, help="processes (0 = one per core)")
    g.add_argument("--force", action="store_true", help="re-cut if settings changed")
    g.add_argument(
        "--engine",
        choices=["local", "ray"],
        help="cut on this machine (local, the default) or as Ray tasks (ray: the recipe's "
        "`ray:` section, or RAY_ADDRESS; needs the `ray` extra)",
    )


def _chunk_config(args, base):
    from vlm_autodrive.builders.core.sections import ChunkConfig
    from vlm_autodrive.builders.core.strict import validate_model

    keys = ("window", "stride", "margin", "mode", "crf", "preset", "ambiguous", "workers")
    # Only the keys the recipe set: a setting it leaves to the default stays unset, which
    # the chunk stage's refusal reads (a build cut before `mode: smart` was the default).
    data = base.model_dump(exclude_unset=True) if base else {}
    given = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    return validate_model("chunk settings (recipe and options)", ChunkConfig, {**data, **given})


def _cmd_sample(args) -> int:
    from vlm_autodrive.builders.core.errors import require_folder_path
    from vlm_autodrive.builders.core.strict import validate_model
    from vlm_autodrive.builders.recipe import SampleConfig
    from vlm_autodrive.builders.synthetic.sample import generate_sample

    keys = ("videos", "seed", "duration", "width", "height", "fps", "gop")
    s = validate_model("command line", SampleConfig, {k: getattr(args, k) for k in keys}, True)
    require_folder_path(args.out, "the output (--out)")
    manifest = generate_sample(args.out, **s.model_dump(), progress=_progress(args))
    print(f"wrote {args.videos} videos and {manifest}")
    return 0


def _cmd_adapt(args) -> int:
    from vlm_autodrive.builders.core.stage import write_rejects
    from vlm_autodrive.builders.ingest.adapters import run_adapter, write_manifest
    from vlm_autodrive.cli_output import print_rejects

    # Absolute video paths, so the manifest works wherever it is moved or ingested from.
    root = args.video_root.resolve() if args.video_root else None
    result = run_adapter(args.adapter, args.source, args.config, root)
    write_manifest(result.entries, args.out, result.paths_from)
    rejects = args.rejects or args.out.with_name(args.out.stem + ".rejects.jsonl")
    write_rejects(rejects, result.rejects)
    print(result.summary())
    print_rejects(result.rejects, rejects)
    print(f"wrote {args.out} ({len(result.entries)} videos) and {rejects}")
    return EXIT_REJECTS if result.rejects else 0


def _cmd_frames_to_video(args) -> int:
    from vlm_autodrive.builders.core.strict import validate_model
    from vlm_autodrive.builders.ingest.frames_to_video import (
        FramesConfig,
        frames_to_video,
        merge_rejects,
    )

    settings = {k: getattr(args, k) for k in ("fps", "crf", "preset", "workers")}
    config = validate_model("command line", FramesConfig, settings)
    from vlm_autodrive.cli_output import print_rejects

    res = frames_to_video(args.src, args.out, config, progress=_progress(args))
    rejects = args.rejects or args.out / "rejects.jsonl"
    merge_rejects(rejects, res.rejects, args.src)  # other groups' rejects in OUT are kept
    print(res.summary())
    print_rejects(res.rejects, rejects)
    print(f"wrote {args.out} and {rejects}")
    return EXIT_REJECTS if res.rejects else 0


def _cmd_ingest(args) -> int:
    from vlm_autodrive.builders.core.errors import require_file
    from vlm_autodrive.builders.core.sections import IngestConfig, worker_count
    from vlm_autodrive.builders.core.taxonomy import taxonomy_for_build
    from vlm_autodrive.builders.ingest.stage import run_ingest
    from vlm_autodrive.builders.pipeline import declared_key
    from vlm_autodrive.cli_output import print_ingest

    require_file(args.manifest, "a manifest")  # before the lock makes the build folder
    taxonomy = taxonomy_for_build(args.build, args.taxonomy)  # else the build's own
    settings = IngestConfig(duplicates=args.duplicates, near_duplicates=args.near_duplicates)
    with _locked(args.build):
        res = run_ingest(
            args.manifest,
            args.build,
            taxonomy,
            worker_count(args.workers),
            progress=_progress(args),
            prune_missing=args.prune_missing,
            duplicates=settings.duplicates,
            near_duplicates=settings.near_duplicates,
            declared=declared_key("ingest", {"ingest": settings}, taxonomy, args.build),
        )
    print_ingest(res, args.build)
    return EXIT_REJECTS if res.rejects else 0


def _cmd_chunk(args) -> int:
    from vlm_autodrive.builders.clips.stage import INGEST_TABLE
    from vlm_autodrive.builders.core.stage import require_stage_input
    from vlm_autodrive.builders.core.taxonomy import taxonomy_for_build
    from vlm_autodrive.builders.recipe import load_recipe, recipe_taxonomy

    recipe = load_recipe(args.recipe) if args.recipe else None
    config = _chunk_config(args, recipe.chunk if recipe else None)
    _refuse_release(args.build)  # before it asks for ingest's table
    require_stage_input(args.build, INGEST_TABLE)  # before the lock makes the folder
    taxonomy = taxonomy_for_build(
        args.build, args.taxonomy or (recipe_taxonomy(recipe) if recipe else None)
    )
    engine = args.engine or (recipe.engine if recipe else "local")
    ray = recipe.ray if recipe else None
    from vlm_autodrive.builders.pipeline import Options, run_chunk_stage

    with _locked(args.build):
        options = Options(force=args.force, progress=_progress(args))
        res = run_chunk_stage(args.build, config, taxonomy, options, engine, ray)
    return EXIT_REJECTS if res.rejects else 0


def _cmd_build(args) -> int:
    from vlm_autodrive.builders.core.taxonomy import load_taxonomy
    from vlm_autodrive.builders.recipe import load_recipe, recipe_taxonomy
    from vlm_autodrive.preflight import check_build_recipe
    from vlm_autodrive.resources import resolve_recipe_path

    path = resolve_recipe_path(args.recipe)
    recipe = load_recipe(path, args.overrides)
    build = args.build or Path(recipe.build_dir)
    taxonomy_path = recipe_taxonomy(recipe)
    taxonomy = load_taxonomy(taxonomy_path)
    print(f"[taxonomy] {taxonomy_path or 'bundled templates/taxonomy.yaml'}: {taxonomy.names}")
    _chunk_config(args, recipe.chunk)  # the command line's chunk settings, checked now
    check_build_recipe(recipe, taxonomy, path)  # files, folders, templates: before any work
    with _locked(build, create=not args.dry_run):
        return _build_locked(args, recipe, build, taxonomy)


def _build_locked(args, recipe, build: Path, taxonomy) -> int:
    """Walk the pipeline (builders/pipeline.py): run it, or plan it for --dry-run."""
    from vlm_autodrive.builders import pipeline

    options = pipeline.Options(
        force=args.force,
        retry_failed=args.retry_failed,
        engine=args.engine,
        chunk=_chunk_config(args, recipe.chunk),
        progress=_progress(args),
        prune_missing=args.prune_missing,
    )
    if args.dry_run:
        return pipeline.plan(recipe, build, taxonomy, options)
    code = pipeline.run(recipe, build, taxonomy, options)
    print(f"\nbuild folder: {build.resolve()}")
    print("load it with:")
    import json

    configs = json.loads((build / "provenance.json").read_text())["configs"]
    for config in configs:
        print(f'  datasets.load_dataset("{build.resolve()}", "{config}")')
    print(_NEXT_STEPS.format(build=build))
    return code


# What a user does after a build (printed at its end: the demo's last words).
_NEXT_STEPS = """next:
  look at rows:          autodrive show {build} mcq
  a page with the clips: autodrive show {build} mcq --html page.html
  the audit's report:    {build}/audit/report.md (again: autodrive audit {build})
  a training mixture:    autodrive mix recipes/mixtures/quickstart.yaml --build {build}
  a release:             autodrive publish {build} --version 0.1.0 --to releases
  train (after mix):     .venv-train/bin/autodrive train recipes/train/tiny_cpu.yaml"""


def _cmd_mix(args) -> int:
    from vlm_autodrive.builders.mix.stage import mix
    from vlm_autodrive.resources import resolve_recipe_path

    with _locked(args.build, create=False):
        print(mix(resolve_recipe_path(args.recipe), args.build, force=args.force).format())
    return 0


def _cmd_publish(args) -> int:
    from vlm_autodrive.builders.core.errors import require_folder_path
    from vlm_autodrive.builders.release.publish import PublishError, publish

    if args.to is not None:
        require_folder_path(args.to, "the release target (--to)")
    try:
        with _locked(args.build, create=False):
            res = publish(
                args.build,
                args.version,
                repo=args.repo,
                to=args.to,
                dry_run=args.dry_run,
                private=args.private,
                license=args.license,
                previous=args.previous,
                allow_older=args.allow_older,
            )
    except PublishError as e:
        _print_error(e)
        return UNEXPECTED
    print(res.format(verbose=args.all_files or args.verbose))  # the global -v implies it
    return 0


def _cmd_show(args) -> int:
    """`autodrive show`, its BUILD a folder or a Hub id ORG/NAME[@vX.Y.Z] (downloaded:
    the config's files, and for --html the clips of the rows shown)."""
    from vlm_autodrive.builders.dataset.show import cmd_show
    from vlm_autodrive.builders.release.hub_ids import resolve_build

    folder = resolve_build(args.build, [f"data/{args.config}/**"], "BUILD")
    if args.html is not None and folder != Path(args.build).expanduser():
        _download_shown_clips(args, folder)
    args.build = folder
    return cmd_show(args)


def _download_shown_clips(args, folder: Path) -> None:
    from vlm_autodrive.builders.dataset.show import parse_where, select_rows
    from vlm_autodrive.builders.release.hub_ids import parse_hub_id, snapshot

    sel = select_rows(folder, args.config, split=args.split, where=parse_where(args.where),
                      limit=args.n)  # fmt: skip
    clips = sorted({r.video for r in sel.rows if r.video})
    if clips:
        repo, rev = parse_hub_id(str(args.build))  # type: ignore[misc]
        snapshot(repo, rev, clips, where=f"BUILD: {args.build}")


def _cmd_eval(args) -> int:
    """`autodrive eval`, a Hub --dataset's version `@X.Y.Z` read as its tag vX.Y.Z (as
    show, export-rl and the API read it; the harness downloads it)."""
    from vlm_autodrive.builders.release.hub_ids import parse_hub_id
    from vlm_autodrive.trainer.eval.cli import cmd_eval

    spec = args.dataset
    parsed = parse_hub_id(spec) if spec and not Path(spec).expanduser().exists() else None
    if parsed and parsed[1]:
        args.dataset = f"{parsed[0]}@{parsed[1]}"
    return cmd_eval(args)


def _cmd_export_rl(args) -> int:
    """`autodrive export-rl`, its SOURCE a folder or a Hub id ORG/NAME[@vX.Y.Z]
    (downloaded: the MCQ configs' files and the clips)."""
    from vlm_autodrive.builders.release.hub_ids import resolve_build
    from vlm_autodrive.trainer.rl.cli import run_export_rl

    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    patterns = [f"data/{c}/**" for c in configs] + ["clips/**"]
    args.source = resolve_build(args.source, patterns, "SOURCE")
    return run_export_rl(args)


def _cmd_export(args) -> int:
    from vlm_autodrive.builders.export import export

    res = export(
        args.source,
        args.format,
        args.out,
        config=args.config,
        split=args.split,
        clip_root=args.clip_root,
    )
    print(f"{res.rows} rows of {res.config} ({res.split}) -> {res.out}: {', '.join(res.files)}")
    for note in res.notes:
        print(f"note: {note}")
    print(f"use: {res.usage}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
