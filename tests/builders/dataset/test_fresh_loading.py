"""`datasets.load_dataset(BUILD, CONFIG)` with the default cache gives the folder's rows as
they are now: after a rebuild that changed them, and for another folder of the same name.

`datasets` (5.2) keys its cache of a local folder on the folder's name and the data-file
patterns of the card's `configs:`, not on the files' bytes or times: with a fixed file
name the second load below returned the first build's rows (checked against the old
naming). The loads run in a child process whose `HF_HOME` is a folder of the test, kept
across all its loads, with caching on: the unchanged reload is served from the same
cache file, which is what makes the other checks mean something.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.dataset.folder import data_path
from vlm_autodrive.builders.rules.stage import RuleSplitsConfig, build_rule_splits
from vlm_autodrive.builders.synthetic.tables import write_synthetic_tables
from vlm_autodrive.resources import bundled

TAX = load_taxonomy()
CONFIG = RuleSplitsConfig(test_per_class=2, on_short="take_available")
LOADER = """
import json, sys
import datasets
out = []
for folder, config, split in json.loads(sys.argv[1]):
    ds = datasets.load_dataset(folder, config, split=split)
    rows = sorted([r["id"], r["question"], r["answer"]] for r in ds)
    out.append({"rows": rows, "cache": [f["filename"] for f in ds.cache_files]})
print(json.dumps(out))
"""


def load(hf_home: Path, *wanted: tuple[Path, str, str]) -> list[dict]:
    """Each (folder, config, split) as `datasets.load_dataset` returns it, default cache
    under `hf_home`: {"rows": sorted [id, question, answer], "cache": its cache files}."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_DATASETS_CACHE")}
    env.update(HF_HOME=str(hf_home), HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    arg = json.dumps([[str(f), c, s] for f, c, s in wanted])
    proc = subprocess.run(
        [sys.executable, "-c", LOADER, arg], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def on_disk(build: Path, config: str, split: str) -> list[list[str]]:
    """The rows of the config's current data file, read with pyarrow."""
    t = pq.read_table(data_path(build, config, split), columns=["id", "question", "answer"])
    return sorted([r["id"], r["question"], r["answer"]] for r in t.to_pylist())


def rule_build(build: Path, seed: int, templates: Path | None = None) -> Path:
    if not (build / "chunk" / "clips.parquet").exists():
        write_synthetic_tables(build, 24, seed=seed, collision_fraction=0.3)
    config = CONFIG.model_copy(update={"templates": str(templates) if templates else None})
    build_rule_splits(build, config, TAX, {})
    return build


def test_a_rebuild_after_a_template_edit_loads_the_new_rows(tmp_path):
    build, hf_home = rule_build(tmp_path / "build", seed=5), tmp_path / "hf"
    first, again = load(hf_home, (build, "mcq", "train"), (build, "mcq", "train"))
    assert first["rows"] == on_disk(build, "mcq", "train")
    assert again["cache"] == first["cache"]  # the cache is on: the reload was served by it
    # Edit the MCQ template (every question changes), rebuild, load with the same cache.
    mine = tmp_path / "templates"
    mine.mkdir()
    text = (bundled("templates") / "mcq.jinja").read_text()
    assert "Choose one option." in text
    (mine / "mcq.jinja").write_text(text.replace("Choose one option.", "Pick one."))
    rule_build(build, seed=5, templates=mine)
    (after,) = load(hf_home, (build, "mcq", "train"))
    assert after["rows"] == on_disk(build, "mcq", "train") != first["rows"]
    assert all("Pick one." in q for _, q, _ in after["rows"])
    assert [r[0] for r in after["rows"]] == [r[0] for r in first["rows"]]  # ids are stable
    # Only the current files are left: the old-named ones went once the card named the new.
    assert sorted(p.name for p in (build / "data/mcq").glob("*.parquet")) == sorted(
        data_path(build, "mcq", s).name for s in ("train", "test")
    )


def test_another_folder_of_the_same_name_loads_its_own_rows(tmp_path):
    a = rule_build(tmp_path / "a" / "build", seed=1)
    b = rule_build(tmp_path / "b" / "build", seed=2)
    assert on_disk(a, "mcq", "train") != on_disk(b, "mcq", "train")
    got_a, got_b = load(tmp_path / "hf", (a, "mcq", "train"), (b, "mcq", "train"))
    assert got_a["rows"] == on_disk(a, "mcq", "train")
    assert got_b["rows"] == on_disk(b, "mcq", "train")
    # The same rows in a third folder of that name are the same files: one cache entry.
    c = tmp_path / "c" / "build"
    shutil.copytree(a, c)
    (got_c,) = load(tmp_path / "hf", (c, "mcq", "train"))
    assert got_c == got_a
