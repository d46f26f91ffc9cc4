"""`autodrive publish --repo` to the local Hub server (tests/doubles/hub_server.py), hit by
SIGINT, SIGTERM and SIGKILL while it uploads (the server stores each LFS object 0.3 s
late; the signal goes once the first one is stored): the run stops as a user expects, no
tag is made, the lock is free, and the same command then finishes with the Hub's files
at the tag equal to those of an uninterrupted publish (the extra commits a resumed
upload makes do not matter: the tree and the tag do).

The real `huggingface_hub` in the CLI's process, pointed at the server by HF_ENDPOINT
(HF_HUB_DISABLE_XET=1: the LFS path). 16 videos' rule build: about 40 s for the fast
pair on 2 cores busy with other work; the SIGINT case (slow) 15 s more.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest

from tests.builders.small_builds import rule_build
from tests.doubles.hub_server import HubServer, start_hub_server
from tests.faults.harness import SIGNALS, check_stopped, hurt, lock_is_free, run

TOKEN = "hf_test" + secrets.token_hex(12)
REPO = "org/drive"
TAG = "v0.1.0"


def hub_env(hub: HubServer, home: Path) -> dict[str, str]:
    """The server's client environment, with any HF_* of this process blanked (the
    harness adds its variables to os.environ's)."""
    env = hub.client_env(home, token=TOKEN)
    return {**{k: "" for k in os.environ if k.startswith("HF_") and k not in env}, **env}


def tagged_files(hub_root: Path, tag: str = TAG) -> dict[str, list]:
    """path -> [git oid, size, LFS sha256] of the commit `tag` names, read from the
    server's storage (repos/datasets/ORG/NAME/{repo.json,commits/ID.json})."""
    repo = hub_root / "repos" / "datasets" / REPO
    commit = json.loads((repo / "repo.json").read_text())["tags"][tag]
    return json.loads((repo / "commits" / f"{commit}.json").read_text())["files"]


def publish_args(build: Path) -> list:
    return ["publish", build, "--repo", REPO, "--version", TAG.removeprefix("v")]


@pytest.fixture(scope="module")
def clean_release(tmp_path_factory):
    """A small build and the files an uninterrupted publish of it leaves at the tag."""
    root = tmp_path_factory.mktemp("hub-faults")
    build = rule_build(root / "build", videos=16)
    with start_hub_server(root / "hub", TOKEN) as hub:
        done = run(publish_args(build), env=hub_env(hub, root / "client"))
        assert done.returncode == 0, done.stderr
    return build, tagged_files(root / "hub")


@pytest.mark.parametrize(
    "sig", ["SIGKILL", "SIGTERM", pytest.param("SIGINT", marks=pytest.mark.slow)]
)
def test_publish_to_the_hub_survives_a_signal_while_uploading(clean_release, tmp_path, sig):
    build, clean = clean_release
    with start_hub_server(tmp_path / "hub", TOKEN, lfs_put_delay=0.3) as hub:
        env = hub_env(hub, tmp_path / "client")
        h = hurt(publish_args(build), SIGNALS[sig], lambda: hub.lfs_uploads >= 1, env_extra=env)
        check_stopped(h, SIGNALS[sig])
        assert hub.refs(REPO)["tags"] == {}, "a tag for a half upload"
        sent = hub.lfs_uploads
        assert sent >= 1
        assert lock_is_free(build)
        hub.lfs_put_delay = 0
        again = run(publish_args(build), env={**os.environ, **env})
        assert again.returncode == 0, again.stderr
        assert "Traceback" not in again.stderr
        assert set(hub.refs(REPO)["tags"]) == {TAG}
        # each object stored once: what the killed run sent is not sent again
        assert all(n == 1 for n in hub.lfs_puts.values()), hub.lfs_puts
    assert tagged_files(tmp_path / "hub") == clean
