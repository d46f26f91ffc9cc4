"""The `autodrive show --html` page in a real browser: headless Chromium (Debian's
`chromium` package, installed by `make browser`, a step of `make test`) loads the page
served from a localhost http.server and opened from disk, plays every clip (H.264 MP4,
cut by stream copy, re-encoded, and smart: re-encoded heads joined to copied bodies, the
default cut) and the test checks that each one decoded and
advanced, and that the rows' text is on the page."""

from __future__ import annotations

import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote

import pyarrow.parquet as pq
import pytest

from tests.browser import Chromium, find_chromium
from tests.builders.dataset.show_build import make_show_build
from vlm_autodrive.builders.dataset.folder import data_files
from vlm_autodrive.builders.dataset.show import select_rows
from vlm_autodrive.builders.dataset.show_html import write_page

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed: `make browser` installs Debian's package "
    "(apt-get install chromium, as root); the page's browser test needs it",
)

# Plays every video at once (muted, as browsers allow without a click), waits until each
# has advanced past 0.3 s or ended or failed (10 s at most), and reports each one's state
# and the page's text.
PLAY_ALL = """
(async () => {
  const videos = [...document.querySelectorAll("video")];
  const play = async (v) => {
    v.muted = true;
    let played = null;
    try { await v.play(); played = "ok"; } catch (e) { played = String(e); }
    const start = performance.now();
    while (!v.error && !v.ended && v.currentTime < 0.3 && performance.now() - start < 10000) {
      await new Promise((r) => setTimeout(r, 50));
    }
    v.pause();
    return {src: v.getAttribute("src"), played, readyState: v.readyState,
            currentTime: v.currentTime, duration: v.duration, width: v.videoWidth,
            error: v.error ? v.error.code + " " + v.error.message : null};
  };
  const states = await Promise.all(videos.map(play));
  const notes = [...document.querySelectorAll(".note")].filter((n) => !n.hidden);
  return JSON.stringify({states, text: document.body.innerText,
                         rows: document.querySelectorAll("article.row").length,
                         notes: notes.map((n) => n.textContent)});
})()
"""


class Recording(SimpleHTTPRequestHandler):
    """Serves a folder; remembers the paths asked for (class attribute `asked`)."""

    asked: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        Recording.asked.append(unquote(self.path))


@pytest.fixture(scope="module", params=["copy", "reencode", "smart"])
def site(request, tmp_path_factory) -> tuple[Path, Path]:
    """A folder holding a build (clips cut by stream copy, re-encoded, or smart-cut as the
    demo does) and, elsewhere under it, the page of every mcq row."""
    root = tmp_path_factory.mktemp("site")
    build = make_show_build(root, request.param)
    page = root / "pages" / "mcq.html"
    write_page(select_rows(build, "mcq", limit=0), page)
    return build, page


def play(url: str) -> dict:
    with Chromium(CHROMIUM) as browser:
        return json.loads(browser.evaluate(url, PLAY_ALL))


def check_played(result: dict, build: Path, page: Path) -> None:
    rows = [
        r
        for side in ("train", "test")  # the page shows train, then test
        for r in pq.read_table(build / data_files(build, "mcq")[side]).to_pylist()
    ]
    clips = {c["path"]: c for c in pq.read_table(build / "chunk/clips.parquet").to_pylist()}
    assert result["rows"] == len(rows) == len(result["states"]) > 4
    assert result["notes"] == []
    for state, row in zip(result["states"], rows):
        assert (page.parent / unquote(state["src"])).resolve() == (build / row["video"]).resolve()
        clip = clips[row["video"]]
        assert state["error"] is None and state["played"] == "ok", state
        assert state["readyState"] >= 2, state  # the current frame is decoded
        assert state["width"] == clip["width"], state
        assert state["currentTime"] > 0.2, state  # it plays, not just loads
        assert abs(state["duration"] - (clip["end"] - clip["start"])) < 0.2, state
    for row in rows:
        assert row["question"].splitlines()[0] in result["text"]
        assert row["answer"] in result["text"] and row["video"] in result["text"]
    assert result["text"].count("(answer)") == len(rows)


def test_served_page_plays_every_clip_beside_its_row(site):
    build, page = site
    root = page.parent.parent
    handler = partial(Recording, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        Recording.asked = []
        port = server.server_address[1]
        result = play(f"http://127.0.0.1:{port}/pages/{page.name}")
    finally:
        server.shutdown()
        server.server_close()
    check_played(result, build, page)
    # The browser fetched each clip through the server, by the page's relative links.
    asked = {p.split("?")[0] for p in Recording.asked}
    for state in result["states"]:
        served = "/" + (page.parent / unquote(state["src"])).resolve().relative_to(root).as_posix()
        assert served in asked


def test_page_opened_from_disk_plays_too(site):
    build, page = site
    check_played(play(page.as_uri()), build, page)
