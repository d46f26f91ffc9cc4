"""Hub conventions of a release, checked with the real `huggingface_hub` and `datasets`
clients against the local Hub server: every config the card declares loads with a plain
`load_dataset(repo, config)` (a config with rows on one side only is declared for that
side; one without rows is listed in the text, not declared), the card links its license
and cites the paper, printed URLs follow HF_ENDPOINT, and publish prints a summary of
the files (every file with -v)."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa

from tests.builders.release.test_publish_hub import REPO, TOKEN, cli
from tests.builders.small_builds import rule_build
from tests.doubles.hub_server import start_hub_server
from vlm_autodrive.builders.dataset.folder import ConfigTables, write_dataset_folder
from vlm_autodrive.builders.release.staging import release_files

MARK = "@@CARD@@"
READ = """
import json, sys
import datasets
from huggingface_hub import DatasetCard, hf_hub_download
repo, tag = sys.argv[1], sys.argv[2]
card = DatasetCard.load(hf_hub_download(repo, "README.md", repo_type="dataset", revision=tag))
rows = {}
for c in card.data.configs:
    ds = datasets.load_dataset(repo, c["config_name"], revision=tag)  # plain, not streaming
    rows[c["config_name"]] = {s: ds[s].num_rows for s in ds}
license = open(hf_hub_download(repo, card.data.license_link, repo_type="dataset",
                               revision=tag)).read()
print(MARK + json.dumps({"rows": rows, "text": card.text, "license": license,
                         "link": card.data.license_link}))
"""


def _with_odd_configs(build):
    """Add `vqa` without any row and `short_qa` with train rows only (as a model stage
    can leave them)."""
    schema = pa.schema([("id", pa.string()), ("video", pa.string()), ("label", pa.string())])
    clip = next(p for p in (build / "clips").rglob("*") if p.is_file())
    one = pa.table({"id": ["q1"], "video": [clip.relative_to(build).as_posix()],
                    "label": ["Collision"]})  # fmt: skip
    configs = [
        ConfigTables("vqa", "Questions.", "model:x@1", "vqa.jinja@0",
                     {s: schema.empty_table() for s in ("train", "test")}),
        ConfigTables("short_qa", "Short answers.", "model:x@1", "short_qa.jinja@0",
                     {"train": one, "test": schema.empty_table()}),
    ]  # fmt: skip
    write_dataset_folder(build, configs, stage="model_splits", stage_info={}, top={})
    return build


def test_declared_configs_load_plainly_and_the_card_follows_hub_conventions(tmp_path):
    build = _with_odd_configs(rule_build(tmp_path / "build", videos=16))
    with start_hub_server(tmp_path / "hub", TOKEN) as hub:
        proc = cli(hub, tmp_path / "client", "publish", str(build), "--repo", REPO,
                   "--version", "0.1.0")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout
        assert f"published v0.1.0 -> {hub.endpoint}/datasets/{REPO}/tree/v0.1.0" in out
        assert "huggingface.co" not in out
        read = subprocess.run(
            [sys.executable, "-c", READ.replace("MARK", repr(MARK)), REPO, "v0.1.0"],
            env=hub.client_env(tmp_path / "reader", token=TOKEN),
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert read.returncode == 0, read.stderr[-4000:]
    got = json.loads(next(x for x in read.stdout.splitlines() if x.startswith(MARK))[len(MARK) :])
    rows = got["rows"]
    assert "vqa" not in rows and rows["short_qa"] == {"train": 1}
    assert {"mcq", "caption_metadata"} <= set(rows) and all(rows["mcq"].values())
    text = got["text"]
    assert "Configs without rows in this build, so not declared" in text and "`vqa`" in text
    assert got["link"] == "LICENSE.md" and "source videos" in got["license"]
    assert "@misc{bhat2026vlmautodrive" in text and "eprint        = {2603.18178}" in text
    assert 'hf_hub_download("org/drive", row["video"], repo_type="dataset", ' in text
    # the upload step: a summary and the first few files, not one line per file
    upload = out[out.index(" upload ") :].split("\n  7.")[0].splitlines()
    assert "files, " in upload[1] and " clips/" in upload[1] and "MB" in upload[1]
    assert len(upload) == 2 + 5 + 1 and upload[-1].strip().endswith("more (all with -v)")


def test_verbose_lists_every_file(tmp_path):
    build = rule_build(tmp_path / "build", videos=16)
    args = ["publish", str(build), "--to", str(tmp_path / "pub"), "--version", "0.1.0",
            "--dry-run"]  # fmt: skip
    run = [sys.executable, "-m", "vlm_autodrive.cli"]
    short = subprocess.run([*run, *args], capture_output=True, text=True, timeout=120)
    full = subprocess.run([*run, *args, "-v"], capture_output=True, text=True, timeout=120)
    assert short.returncode == full.returncode == 0, short.stderr + full.stderr
    clips = [f for f in release_files(build).files if f.startswith("clips/")]
    assert len(clips) > 5
    assert all(c in full.stdout for c in clips)
    assert sum(c in short.stdout for c in clips) < len(clips)
    assert "more (all with -v)" in short.stdout and "more (all with -v)" not in full.stdout
