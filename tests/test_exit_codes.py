"""One table of exit codes (vlm_autodrive/exit_codes.py), followed by every command.

Each command's common failure is run through the CLI's main() as a user meets it, and
its exit code and the start of its message are checked against the table: bad input
(2) begins `autodrive: `, a machine's error (1) or an unreachable server (4) `error: `.
A version already published is bad input, to a folder and (tests/builders/release/
test_publish_hub.py) to the Hub alike. Also: `autodrive --help` prints the table, and
the global -v, -q and --log-file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders.small_builds import rule_build
from vlm_autodrive.cli import main
from vlm_autodrive.exit_codes import EXIT_CODES, PREFIX


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    """A small publishable build (synthetic tables, the rule configs, stand-in clips)."""
    return rule_build(tmp_path_factory.mktemp("codes") / "build", videos=12)


def run(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def failure(capsys, code: int, *args) -> str:
    """Run `autodrive ARGS`; it must exit `code` with the table's message prefix."""
    got, out, err = run(capsys, *args)
    assert got == code, (args, out, err)
    assert err.startswith(PREFIX[code]) and "Traceback" not in err, (args, err)
    return err


def common_failures(tmp: Path, build: Path) -> dict[str, list]:
    """Per command, the arguments of its most common failure: bad input (exit 2)."""
    missing = tmp / "missing"
    (tmp / "empty").mkdir(exist_ok=True)
    return {
        "sample": ["sample", "--out", tmp / "s", "--videos", "0"],
        "adapt": ["adapt", "nexar", missing, "--out", tmp / "m.jsonl"],
        "frames-to-video": ["frames-to-video", missing, "--out", tmp / "f", "--fps", "10"],
        "ingest": ["ingest", missing / "manifest.jsonl", "--build", tmp / "b"],
        "chunk": ["chunk", "--build", tmp / "empty"],
        "build": ["build", missing / "recipe.yaml"],
        "mix": ["mix", "recipes/mixtures/quickstart.yaml", "--build", missing],
        "publish": ["publish", build, "--version", "1.0"],
        "show": ["show", build, "nope"],
        "audit": ["audit", missing],
        "eval": ["eval", "--model", missing, "--dataset", build],
        "train": ["train", missing / "train.yaml"],
        "export-rl": ["export-rl", missing, "--out", tmp / "rl"],
        "export": ["export", missing, "--format", "llava", "--out", tmp / "x"],
    }


def test_every_commands_common_failure_is_bad_input(build, tmp_path, capsys):
    cases = common_failures(tmp_path, build)
    from vlm_autodrive.cli import _parser

    commands = set(_parser()._subparsers._group_actions[0].choices)
    assert set(cases) == commands, "a command without a failure case here"
    for args in cases.values():
        failure(capsys, 2, *args)


def test_usage_errors_are_bad_input_with_the_same_prefix(capsys):
    for args in (["build"], ["bogus"], ["publish", "b"], ["eval", "compare"]):
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("autodrive: command line: ") and "usage: autodrive" in err, err


def test_a_version_already_published_to_a_folder_is_bad_input(build, tmp_path, capsys):
    to = tmp_path / "releases"
    assert run(capsys, "publish", build, "--version", "0.1.0", "--to", to)[0] == 0
    err = failure(capsys, 2, "publish", build, "--version", "0.1.0", "--to", to)
    assert "already published" in err


def test_rejects_are_exit_3(tmp_path, capsys):
    Image = pytest.importorskip("PIL.Image")
    frames = tmp_path / "frames" / "clip"
    frames.mkdir(parents=True)
    for n in (1, 3):  # frame 2 is missing: the folder is a reject naming the gap
        Image.new("RGB", (32, 32)).save(frames / f"{n}.png")
    code, out, err = run(capsys, "frames-to-video", tmp_path / "frames", "--out",
                         tmp_path / "mp4", "--fps", "10", "-q")  # fmt: skip
    assert code == 3 and "reject" in out, out + err


def test_machine_errors_interrupts_and_terms_follow_the_table(tmp_path, capsys, monkeypatch):
    from vlm_autodrive.builders.synthetic import sample
    from vlm_autodrive.cli import Terminated

    args = ["sample", "--out", tmp_path / "s", "--videos", "1"]
    for raised, code in (
        (OSError(28, "No space left on device"), 1),
        (KeyboardInterrupt(), 130),
        (Terminated(), 143),
    ):

        def fail(*a, raised=raised, **k):
            raise raised

        monkeypatch.setattr(sample, "generate_sample", fail)
        failure(capsys, code, *args)


def test_the_help_prints_the_table(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "exit codes:" in out
    for e in EXIT_CODES:
        assert f"  {e.code:>3}  {e.meaning.split()[0]}" in out


def test_log_file_records_the_command_the_failure_and_its_code(build, tmp_path, capsys):
    log = tmp_path / "logs" / "autodrive.log"
    err = failure(capsys, 2, "--log-file", log, "show", build, "nope")
    text = log.read_text()
    assert f"command: autodrive --log-file {log} show {build} nope" in text
    assert "no config 'nope'" in text and "exit code 2" in text
    assert err.count("no config 'nope'") == 1  # on stderr once: the log is not echoed
    assert run(capsys, "show", build, "mcq", "-n", "1", "--log-file", log)[0] == 0
    assert log.read_text().count("exit code") == 2  # appended; the flag after the command


def test_quiet_turns_the_progress_bars_off(tmp_path, capsys):
    small = ["--videos", "1", "--duration", "2", "--width", "32", "--height", "32"]
    code, _, err = run(capsys, "sample", "--out", tmp_path / "a", *small)
    assert code == 0 and "sample videos" in err
    code, _, err = run(capsys, "-q", "sample", "--out", tmp_path / "b", *small)
    assert code == 0 and err == ""
    assert "TQDM_DISABLE" not in os.environ  # restored after main()


def test_verbose_lists_every_file_publish_would_write(build, tmp_path, capsys):
    args = ["publish", build, "--version", "0.1.0", "--to", tmp_path / "r", "--dry-run"]
    _, short, _ = run(capsys, *args)
    _, every, _ = run(capsys, "-v", *args)
    _, own_flag, _ = run(capsys, *args, "-v")  # publish's own -v: the same
    assert len(every.splitlines()) > len(short.splitlines()) and every == own_flag
    assert "more" in short and "more" not in every


def test_an_unreachable_hub_is_exit_4(build, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run(
        [sys.executable, "-m", "vlm_autodrive.cli", "show", "org/drive@v0.1.0", "mcq"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.startswith("error: BUILD: org/drive@v0.1.0: ") and "cannot be reached" in (
        proc.stderr
    )
