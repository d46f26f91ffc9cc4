"""A full disk while the response cache is written: a clean `error:` (exit 1) saying what
to do, never a traceback, and every response stored before kept intact and reused."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

import pytest

from tests.builders.generate.tiny_recipe import write_tiny_recipe
from tests.disks import small_tmpfs
from tests.doubles.fake_server import FakeOpenAIServer
from vlm_autodrive.builders.generate.backends.base import Completion, GenerationResponse
from vlm_autodrive.builders.generate.cache import CacheWriteError, ResponseCache
from vlm_autodrive.cli import main


def responses(prefix: str, count: int, size: int = 2000) -> list[GenerationResponse]:
    text = "x" * size
    return [
        GenerationResponse(f"{prefix}{i}", [Completion(text, None, "stop", 10)], prompt_tokens=5)
        for i in range(count)
    ]


def test_sqlite_full_is_a_cache_write_error_and_the_cache_is_intact(tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    cache.put_many("m", responses("a", 20))
    # SQLite's own "database or disk is full" (SQLITE_FULL), as on a full disk: the file
    # may not grow past the pages it has now.
    (pages,) = cache.db.execute("PRAGMA page_count").fetchone()
    cache.db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(CacheWriteError) as e:
        cache.put_many("m", responses("b", 200))
    msg = str(e.value)
    assert isinstance(e.value, OSError)  # the CLI prints OSErrors as `error: ...`, exit 1
    assert msg.startswith(f"{tmp_path / 'responses.sqlite'}: the disk is full")
    assert "database or disk is full" in msg and "run the same command again" in msg
    cache.close()
    again = ResponseCache(tmp_path / "responses.sqlite")
    assert again.db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert len(again.get_many([f"a{i}" for i in range(20)], 1)) == 20
    assert not again.get_many([f"b{i}" for i in range(200)], 1)  # rolled back whole


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 4 MiB tmpfs of its own (root only; skipped with the reason elsewhere)."""
    yield from small_tmpfs(tmp_path / "disk", "4m")


def fill(disk: Path) -> Path:
    """Write a file until `disk` is full; the file (delete it to free the space)."""
    filler = disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as f:
        while True:
            f.write(b"\0" * 65536)
            f.flush()
            os.fsync(f.fileno())
    return filler


def stored(cache: Path) -> int:
    with contextlib.closing(sqlite3.connect(cache)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


def test_a_build_whose_cache_disk_fills_up_says_so_and_resumes(tmp_path, small_disk, capsys):
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "cache").symlink_to(small_disk)  # the cache on the small disk
    cache = tmp_path / "build" / "cache" / "responses.sqlite"
    with FakeOpenAIServer() as server:
        # 3: finished, with rows rejected (a class short of a test clip): not this test's
        assert main(["build", str(write_tiny_recipe(tmp_path, server.base_url, seed=0))]) in (0, 3)
        first = stored(cache)
        assert first > 0
        filler = fill(small_disk)
        capsys.readouterr()
        # another seed: every request misses the cache and its response must be stored
        recipe = write_tiny_recipe(tmp_path, server.base_url, seed=1)
        code = main(["build", str(recipe)])
        err = capsys.readouterr().err
        assert code == 1, err
        assert f"\nerror: {cache}: the disk is full (" in err, err
        assert "Traceback" not in err and "run the same command again" in err
        filler.unlink()
        assert stored(cache) == first  # what was stored before is intact
        assert main(["build", str(recipe)]) in (0, 3)
        assert stored(cache) == 2 * first
