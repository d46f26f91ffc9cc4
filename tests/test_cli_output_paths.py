"""A file where a command writes a folder, or a folder where it writes a file: bad input
(exit 2) with one line naming the path and what is wrong, never `error: [Errno 17] File
exists` (exit 1) or a traceback; and a FileExistsError that is not about an output path
stays the machine's error (exit 1).

`--build FILE` (ingest, build), `show --html FILE/page.html`, `export --out FILE`,
`--log-file FOLDER` and `--log-file FILE/x.log`, through the CLI's main() as a user
runs them. A few seconds: a 3-video sample and a small build of synthetic tables.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.builders.small_builds import rule_build
from vlm_autodrive.cli import main

IN_THE_WAY = "is a file, but a folder is needed there"


def run(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def bad_input(capsys, *args) -> str:
    code, _, err = run(capsys, *args)
    assert code == 2, err
    assert err.startswith("autodrive: ") and "Traceback" not in err, err
    assert "Errno" not in err, err
    return err


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("paths") / "s"
    args = ["sample", "--videos", "3", "--out", out, "--duration", "3"]
    assert main([str(a) for a in [*args, "--width", "64", "--height", "48"]]) == 0
    return out


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    return rule_build(tmp_path_factory.mktemp("paths-build") / "build", videos=12)


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("a user's file\n")
    return path


def test_ingest_and_build_into_a_file(sample, tmp_path, a_file, capsys):
    manifest = sample / "manifest.jsonl"
    err = bad_input(capsys, "ingest", manifest, "--build", a_file)
    assert err == f"autodrive: {a_file}: {IN_THE_WAY}; move it, or choose another path\n"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"manifest: {manifest}\nbuild_dir: {tmp_path / 'b'}\n")
    err = bad_input(capsys, "build", recipe, "--build", a_file)
    assert f"autodrive: {a_file}: {IN_THE_WAY}" in err
    # a folder below the file: the file is named, and what it was to hold
    err = bad_input(capsys, "ingest", manifest, "--build", a_file / "sub")
    assert f"autodrive: {a_file}: {IN_THE_WAY} (to hold {a_file / 'sub'})" in err
    assert a_file.read_text() == "a user's file\n"


def test_show_html_and_export_out_under_or_at_a_file(build, a_file, capsys):
    err = bad_input(capsys, "show", build, "mcq", "--html", a_file / "page.html")
    assert err.startswith(f"autodrive: {a_file}: {IN_THE_WAY}"), err
    err = bad_input(capsys, "export", build, "--format", "llamafactory", "--out", a_file,
                    "--config", "mcq")  # fmt: skip
    assert err.startswith(f"autodrive: {a_file}: "), err
    assert a_file.read_text() == "a user's file\n"


def test_log_file_a_folder_or_under_a_file(sample, tmp_path, a_file, capsys):
    manifest = sample / "manifest.jsonl"
    err = bad_input(capsys, "--log-file", tmp_path, "ingest", manifest, "--build", tmp_path / "b")
    assert err == f"autodrive: {tmp_path}: is a folder, but --log-file names a file\n"
    err = bad_input(capsys, "ingest", manifest, "--build", tmp_path / "b",
                    "--log-file", a_file / "run.log")  # fmt: skip
    assert err.startswith(f"autodrive: {a_file}: {IN_THE_WAY}"), err
    assert not (tmp_path / "b").exists()  # nothing done


def test_a_file_exists_error_that_is_not_an_output_path_is_the_machines(
    tmp_path, capsys, monkeypatch
):
    """An exclusive create or a link over an existing file (a race, a stale file) is not
    the user's: exit 1, `error: `, as before."""
    from vlm_autodrive.builders.synthetic import sample

    taken = tmp_path / "taken"
    taken.write_text("x")

    def exclusive_create(*a, **k):
        os.open(taken, os.O_CREAT | os.O_EXCL | os.O_WRONLY)

    monkeypatch.setattr(sample, "generate_sample", exclusive_create)
    code, _, err = run(capsys, "sample", "--out", tmp_path / "s", "--videos", "1")
    assert code == 1 and err.startswith("error: [Errno 17]") and "Traceback" not in err, err
