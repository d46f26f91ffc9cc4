"""`autodrive export` takes a Hub id `owner/name@vX.Y.Z`: the release is read with the
real `huggingface_hub` client from the local Hub server (the config's Parquet file and
the clips its rows use, into the Hugging Face cache) and exported from that snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from tests.builders.release.test_publish_hub import REPO, TOKEN, cli
from tests.doubles.hub_server import start_hub_server
from vlm_autodrive.builders.dataset.folder import data_path


def test_a_published_release_exports_from_its_hub_id(build, tmp_path):
    mix = pq.read_table(data_path(build, "mix-quick", "train")).to_pylist()
    with start_hub_server(tmp_path / "hub", TOKEN) as hub:
        home = tmp_path / "client"
        proc = cli(hub, home, "publish", str(build), "--repo", REPO, "--version", "0.1.0")
        assert proc.returncode == 0, proc.stderr
        out = tmp_path / "llava"
        proc = cli(hub, home, "export", f"{REPO}@v0.1.0", "--format", "llava",
                   "--config", "mix-quick", "--out", str(out))  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        # without --config a Hub source cannot pick its mix-* config: exit 2, named
        proc = cli(hub, home, "export", REPO, "--format", "llava", "--out", str(tmp_path / "x"))
        assert proc.returncode == 2 and "--config" in proc.stderr
    meta = json.loads((out / "export.json").read_text())
    assert meta["source"] == f"{REPO}@v0.1.0" and meta["revision"]
    items = json.loads((out / "mix-quick_train.json").read_text())
    assert [i["id"] for i in items] == [r["id"] for r in mix]
    snapshot = Path(meta["data_path"])
    assert snapshot.is_relative_to(home) and all((snapshot / i["video"]).is_file() for i in items)
