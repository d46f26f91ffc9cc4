"""`autodrive show`, run as a user runs it, on a tiny real build: rows as text, filters,
limits, the messages of bad arguments, and the `--html` page's links and escaping (the
page in a real browser: test_show_browser.py)."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from unittest import mock
from urllib.parse import unquote

import pyarrow.parquet as pq
import pytest

from tests.builders.dataset.show_build import make_show_build
from vlm_autodrive.builders.dataset.folder import data_files
from vlm_autodrive.cli import main


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    return make_show_build(tmp_path_factory.mktemp("show"))


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def show(*args: str | Path, width: int = 400) -> Result:
    """`autodrive show ARGS` in this process (the CLI's own entry point, so the same exit
    codes and messages; test_the_console_script runs the installed command itself)."""
    out, err = io.StringIO(), io.StringIO()
    # A wide terminal, so a value's words stay on one line and can be looked for.
    with (
        mock.patch.dict(os.environ, {"COLUMNS": str(width)}),
        redirect_stdout(out),
        redirect_stderr(err),
    ):
        code = main(["show", *map(str, args)])
    return Result(code, out.getvalue(), err.getvalue())


def rows(build: Path, config: str, side: str | None = None) -> list[dict]:
    """The config's rows read straight from its Parquet files (train, then test)."""
    out = []
    files = data_files(build, config)
    for s in ("train", "test"):
        rel = files.get(s)
        if rel and (side is None or s == side) and (build / rel).exists():
            out += pq.read_table(build / rel).to_pylist()
    return out


def blocks(stdout: str) -> list[str]:
    """The printed rows, one text block each (the heading starts with `[k/n]`)."""
    return re.split(r"\n(?=\[\d+/\d+\] )", stdout.split("\nshowing ")[0].strip())


def test_rows_print_question_lettered_options_answer_reasoning_and_provenance(build):
    res = show(build, "reasoning_mcq", "-n", "2")
    assert res.returncode == 0, res.stderr
    want = rows(build, "reasoning_mcq")
    clips = {c["clip_id"]: c for c in pq.read_table(build / "chunk/clips.parquet").to_pylist()}
    printed = blocks(res.stdout)
    assert len(printed) == 2
    for text, row in zip(printed, want[:2]):
        assert text.startswith(
            f"[{printed.index(text) + 1}/2] reasoning_mcq · train · {row['label']}"
        )
        assert row["question"].splitlines()[0] in text
        for letter, option in zip("ABC", row["options"]):
            mark = "   <- answer" if letter == row["answer_letter"] else ""
            assert re.search(rf"^\s+(options\s+)?{letter}\. {re.escape(option)}{mark}$", text, re.M)
        assert f"answer       {row['answer']}" in text
        assert f"reasoning    {row['reasoning']}" in text
        assert f"clip         {row['video']}" in text
        clip = clips[row["clip_id"]]
        assert f"video {row['video_id']} ({row['video_id']}.mp4, synthetic)" in text
        assert f"window {clip['start']:.2f}-{clip['end']:.2f} s of 8.00 s" in text
        assert f"generator scripted@1, template {row['template']}" in text
    n = len(want)
    assert res.stdout.rstrip().endswith(
        f"showing 2 of {n} rows of reasoning_mcq (train 4, test 4); {n} rows in train+test"
    )


def test_captions_and_failures_read_as_such(build):
    res = show(build, "caption_metadata", "-n", "1")
    row = rows(build, "caption_metadata")[0]
    assert res.returncode == 0 and f"caption      {row['answer'][:60]}" in res.stdout
    res = show(build, "failures", "--where", "kind=filtered", "-n", "1")
    fail = next(r for r in rows(build, "failures") if r["kind"] == "filtered")
    assert res.returncode == 0
    assert f"failed split {fail['config']}" in res.stdout
    assert f"reason       {fail['reason']}" in res.stdout
    assert "raw output   <think>" in res.stdout


def test_where_keeps_only_matching_rows_and_counts_them(build):
    every = rows(build, "mcq")
    collisions = [r for r in every if r["label"] == "Collision"]
    assert 0 < len(collisions) < len(every)
    res = show(build, "mcq", "--where", "label=Collision", "-n", "0")
    assert res.returncode == 0, res.stderr
    printed = blocks(res.stdout)
    assert [b.split(" · ")[2] for b in printed] == ["Collision"] * len(collisions)
    assert [re.search(r"id (\w+)", b).group(1) for b in printed] == [r["id"] for r in collisions]
    assert (
        f"showing {len(collisions)} of {len(collisions)} rows of mcq matching label=Collision"
        in res.stdout
    )
    assert f"; {len(every)} rows in train+test" in res.stdout
    # Every filter must hold; a list column matches one of its elements.
    test_coll = [r for r in collisions if r["split"] == "test"]
    res = show(build, "mcq", "--where", "label=Collision", "--where", "split=test")
    assert len(blocks(res.stdout)) == len(test_coll) > 0
    vqa = [r for r in rows(build, "vqa") if "two" in r["options"]]
    res = show(build, "vqa", "--where", "options=two", "-n", "0")
    assert f"showing {len(vqa)} of {len(vqa)} rows of vqa matching options=two" in res.stdout
    res = show(build, "mcq", "--where", "label=Sudden Stop")
    assert res.returncode == 0 and res.stdout.startswith("showing 0 of 0 rows of mcq")


def test_n_and_split_choose_the_rows(build):
    every = rows(build, "vqa")
    res = show(build, "vqa", "-n", "3")
    assert [re.search(r"id (\w+)", b).group(1) for b in blocks(res.stdout)] == [
        r["id"] for r in every[:3]
    ]
    res = show(build, "vqa", "-n", "0")
    assert len(blocks(res.stdout)) == len(every) > 10
    test_rows = rows(build, "vqa", "test")
    res = show(build, "vqa", "--split", "test", "-n", "0")
    printed = blocks(res.stdout)
    assert len(printed) == len(test_rows) and all(" · test · " in b for b in printed)
    assert "rows in test" in res.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["mcqq"],
            ["no config 'mcqq'", "the folder has: caption_metadata, caption_vlm, failures, mcq,"],
        ),
        (
            ["mcq", "--where", "lable=Collision"],
            ["no column 'lable'", "its columns: id, clip_id, video_id, label,"],
        ),
        (["mcq", "--where", "label"], ["--where 'label': expected KEY=VALUE"]),
        (["mcq", "--split", "dev"], ["no split 'dev'", "it has: train, test"]),
        (["mcq", "-n", "-1"], ["-n -1", "0 (all) or more"]),
    ],
)
def test_bad_arguments_name_what_is_wrong_and_what_exists(build, args, words):
    res = show(build, *args)
    assert res.returncode == 2 and res.stdout == ""
    assert "Traceback" not in res.stderr
    for w in words:
        assert w in res.stderr


def test_a_folder_that_is_not_a_build(tmp_path):
    res = show(tmp_path, "mcq")
    assert res.returncode == 2 and "not a build folder (no provenance.json)" in res.stderr
    assert "autodrive build RECIPE" in res.stderr
    res = show(tmp_path / "nowhere", "mcq")
    assert res.returncode == 2 and "no such build folder" in res.stderr


def test_html_page_links_clips_relative_escapes_text_and_is_deterministic(build, tmp_path):
    page = tmp_path / "pages" / "deep" / "failures.html"
    res = show(build, "failures", "-n", "0", "--html", page)
    assert res.returncode == 0, res.stderr
    fails = rows(build, "failures")
    assert f"wrote {page}: {len(fails)} rows beside their clips" in res.stdout
    html = page.read_text()
    srcs = re.findall(r'<video controls muted preload="metadata" src="([^"]+)">', html)
    assert len(srcs) == len(fails)
    for src, row in zip(srcs, fails):
        assert not src.startswith(("/", "file:")) and src.endswith(".mp4")
        assert (page.parent / unquote(src)).resolve() == (build / row["video"]).resolve()
    # No path of this machine: the page works wherever the folder is copied or served.
    assert str(tmp_path) not in html and str(build) not in html and "file://" not in html
    # Model output is text: its <think> shows as such, never becomes markup.
    assert "&lt;think&gt;" in html and "<think>" not in html
    assert all(f'data-row-id="{r["id"]}"' in html for r in fails)
    again = tmp_path / "pages" / "deep" / "again.html"
    show(build, "failures", "-n", "0", "--html", again)
    assert again.read_bytes() == page.read_bytes()
    res = show(build, "mcq", "--html", tmp_path)
    assert res.returncode == 2 and "is a folder" in res.stderr


def test_mixture_rows_show_their_conversation(build, tmp_path):
    from tests.trainer.fixtures import CONFIG, mix

    mixed = tmp_path / "build"
    shutil.copytree(build, mixed)
    mix(mixed)
    res = show(mixed, CONFIG, "-n", "1")
    assert res.returncode == 0, res.stderr
    first = rows(mixed, CONFIG)[0]
    assert "conversation system: " in res.stdout
    assert f"user: [video {first['video']}] What kind of driving event" in res.stdout
    assert f"source_config {first['source_config']}" in res.stdout


def test_the_console_script(build, tmp_path):
    """The installed `autodrive` command, as a user types it: rows, and a bad column."""
    exe = Path(sys.executable).with_name("autodrive")
    env = {**os.environ, "COLUMNS": "400"}
    res = subprocess.run(
        [exe, "show", build, "mcq", "-n", "1", "--where", "label=Collision"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    row = next(r for r in rows(build, "mcq") if r["label"] == "Collision")
    assert res.returncode == 0, res.stderr
    assert f"answer       {row['answer']}" in res.stdout
    res = subprocess.run(
        [exe, "show", build, "mcq", "--where", "colour=red"], capture_output=True, text=True
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith("autodrive: --where: config 'mcq' has no column 'colour'")


def test_a_corrupt_config_file_is_named(build, tmp_path):
    broken = tmp_path / "build"
    shutil.copytree(build, broken)
    (broken / data_files(broken, "mcq")["train"]).write_bytes(b"not parquet")
    res = show(broken, "mcq")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert (
        f"{broken / data_files(broken, 'mcq')['train']}: not a readable Parquet file" in res.stderr
    )
