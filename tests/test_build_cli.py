"""`autodrive build` with model splits over HTTP: kill -9 mid-split, server down, dry run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tests.doubles.fake_server import DEFAULT_ANSWER, FakeOpenAIServer
from vlm_autodrive.builders.dataset.folder import data_files


def write_recipe(root: Path, base_url: str, splits: dict | None = None) -> Path:
    recipe = {
        "manifest": str(root / "sample" / "manifest.jsonl"),
        "build_dir": str(root / "build"),
        "sample": {"videos": 6, "seed": 3, "duration": 8.0, "width": 96, "height": 64},
        "chunk": {"window": 2.0, "stride": 1.0, "margin": 0.5, "mode": "copy"},
        "rules": {"test_per_class": 1, "on_short": "take_available"},
        "generate": {
            "models": {
                "m": {
                    "model": "fake-model",
                    "base_urls": [base_url],
                    "max_concurrency": 2,
                    "max_retries": 0,
                    "timeout": 30,
                }
            },
            "configs": splits or {"vqa": {"model": "m"}, "reasoning_vqa": {"model": "m"}},
        },
    }
    path = root / "recipe.yaml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text("# test recipe: a fake OpenAI-compatible server\n" + yaml.safe_dump(recipe))
    return path


def build(recipe: Path, *extra: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vlm_autodrive.cli", "build", str(recipe), *extra],
        capture_output=True,
        text=True,
        **kw,
    )


def cached_responses(build_dir: Path) -> int:
    db = build_dir / "cache" / "responses.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not created yet
        return 0


def table(build_dir: Path, config: str) -> list[dict]:
    rows = []
    for rel in data_files(build_dir, config).values():
        rows += pq.read_table(build_dir / rel).to_pylist()  # train, then test
    return rows


def summary_line(out: str, split: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.strip().startswith(split + " "))


@pytest.mark.slow
def test_kill_9_mid_split_then_rerun_loses_and_duplicates_nothing(tmp_path):
    with FakeOpenAIServer(delay=0.25) as server:
        recipe = write_recipe(tmp_path, server.base_url)
        proc = subprocess.Popen(
            [sys.executable, "-m", "vlm_autodrive.cli", "build", str(recipe)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.time() + 120
        while time.time() < deadline and cached_responses(tmp_path / "build") < 4:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kept = cached_responses(tmp_path / "build")
        assert kept >= 4, "nothing was cached before the kill"
        before = server.requests
        done = build(recipe)
        assert done.returncode == 3, done.stderr  # the fake's answers fail to parse: failures
        vqa = summary_line(done.stdout, "vqa")
        rvqa = summary_line(done.stdout, "reasoning_vqa")
        requests = int(vqa[2]) + int(rvqa[2])
        cached = int(vqa[3]) + int(rvqa[3])
        sent = int(vqa[4]) + int(rvqa[4])
        assert cached == kept and sent == requests - kept  # completed responses reused
        assert server.requests - before == sent
        fails = table(tmp_path / "build", "failures")
        ids = [f["id"] for f in fails]
        assert len(ids) == len(set(ids)) == int(vqa[5]) + int(rvqa[5])  # samples = failures
        # The stand-in's caption-like text is no JSON: every sample a parse failure.
        assert all(
            f["kind"] == "parse" and f["raw_output"].startswith(DEFAULT_ANSWER) for f in fails
        )


@pytest.mark.slow
def test_server_down_at_start_names_the_url_and_keeps_the_rest(tmp_path):
    recipe = write_recipe(tmp_path, "http://127.0.0.1:9/v1")
    out = build(recipe)
    assert out.returncode == 4, out.stderr
    assert "127.0.0.1:9" in out.stderr
    # the stages before the model splits are done and kept
    assert (tmp_path / "build" / "data" / "mcq").is_dir()
    dry = build(recipe, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert summary_line(dry.stdout, "vqa")[3] == "0"  # nothing cached, nothing lost
    assert json.loads((tmp_path / "build" / "provenance.json").read_text())["configs"]


def wait_for_cached(build_dir: Path, count: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and cached_responses(build_dir) < count:
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_mid_split_with_rows_then_rerun_equals_an_uninterrupted_run(tmp_path):
    """caption_vlm through a server: every answer becomes a row, so lost or doubled
    responses would show as missing or repeated rows."""
    splits = {"caption_vlm": {"model": "m"}}
    with FakeOpenAIServer(delay=0.2) as server:
        whole = write_recipe(tmp_path / "whole", server.base_url, splits)
        assert build(whole).returncode == 0
        expected = table(tmp_path / "whole" / "build", "caption_vlm")
        killed = write_recipe(tmp_path / "killed", server.base_url, splits)
        proc = subprocess.Popen(
            [sys.executable, "-m", "vlm_autodrive.cli", "build", str(killed)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_cached(tmp_path / "killed" / "build", 4)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kept = cached_responses(tmp_path / "killed" / "build")
        assert 4 <= kept < len(expected), "the kill came too late to test anything"
        done = build(killed)
        assert done.returncode == 0, done.stderr
    line = summary_line(done.stdout, "caption_vlm")
    assert int(line[3]) == kept and int(line[4]) == len(expected) - kept  # cached, sent
    got = table(tmp_path / "killed" / "build", "caption_vlm")
    assert len({r["id"] for r in got}) == len(got) == len(expected) > 0
    assert sorted(got, key=lambda r: r["id"]) == sorted(expected, key=lambda r: r["id"])


def test_version_and_the_build_line_of_the_help(capsys):
    from vlm_autodrive import __version__
    from vlm_autodrive.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"autodrive {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the line
    stages = "sample, ingest, chunk, rule splits, model splits"
    assert f"build run a whole build recipe ({stages})" in text
