"""The new-class story as a user lives it, every step a real `autodrive` command.

Build the sample with the bundled classes; copy the templates folder, add Sudden Stop
to its taxonomy.yaml, relabel two events of the manifest, point the recipe at the
folder. The rebuild asks for --force naming the added class; a test too big for the
small class names max_test_fraction, on_short and the docs section; with
`on_short: take_available` the build has Sudden Stop in clips and mcq, and the eval of
that build (a real OpenAI-compatible server double) scores with the build's taxonomy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tests.doubles.fake_server import FakeOpenAIServer
from vlm_autodrive.builders.dataset.folder import data_files
from vlm_autodrive.resources import bundled

AUTODRIVE = Path(sys.executable).parent / "autodrive"
CLASSES = "['Collision', 'Near-Collision', 'Sudden Stop', 'Normal Driving']"
SMALL = ("--width", "96", "--height", "64", "--fps", "10", "--gop", "10")
NEW_CLASS = """\
  - name: Sudden Stop
    mcq_option: "Sudden Stop: the ego vehicle brakes hard to a standstill, no crash."
    description: "The ego vehicle brakes hard and stops abruptly."
    is_event: true
"""


def autodrive(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(AUTODRIVE), *args], cwd=cwd, capture_output=True, text=True)


def write_recipe(root: Path, **splits) -> None:
    recipe = {
        "manifest": "manifest.jsonl",
        "build_dir": "build",
        "chunk": {"window": 3.0, "stride": 2.5, "margin": 0.5, "workers": 1},
        "rules": {"test_per_class": 1, "seed": 0, **splits},
    }
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))


@pytest.mark.slow
def test_new_class_from_a_copied_templates_folder(tmp_path):
    r = autodrive(
        tmp_path, "sample", "--videos", "10", "--duration", "8", *SMALL, "--out", "sample"
    )
    assert r.returncode == 0, r.stderr
    rows = [
        json.loads(x) for x in (tmp_path / "sample" / "manifest.jsonl").read_text().splitlines()
    ]
    for row in rows:
        row["path"] = f"sample/{row['path']}"
    write_manifest = lambda: (tmp_path / "manifest.jsonl").write_text(  # noqa: E731
        "".join(json.dumps(row) + "\n" for row in rows)
    )
    write_manifest()
    write_recipe(tmp_path)
    r = autodrive(tmp_path, "build", "recipe.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[taxonomy] bundled templates/taxonomy.yaml" in r.stdout

    # The user's edits: a copied templates folder with a new class; two events renamed.
    shutil.copytree(bundled("templates"), tmp_path / "my_templates")
    taxonomy = tmp_path / "my_templates" / "taxonomy.yaml"
    text = taxonomy.read_text()
    taxonomy.write_text(
        text.replace("  - name: Normal Driving\n", NEW_CLASS + "  - name: Normal Driving\n")
    )
    renamed = [row for row in rows if row["label"] == "Near-Collision"][:2]
    assert len(renamed) == 2
    for row in renamed:
        row["label"] = "Sudden Stop"
    write_manifest()
    write_recipe(tmp_path, templates="my_templates", test_per_class=2)

    r = autodrive(tmp_path, "build", "recipe.yaml")
    assert r.returncode == 2, r.stdout + r.stderr
    # the path as the recipe resolves it: against the recipe's folder
    assert f"[taxonomy] {tmp_path / 'my_templates' / 'taxonomy.yaml'}: {CLASSES}" in r.stdout
    assert "labels (the taxonomy's classes): added ['Sudden Stop']" in r.stderr
    assert "clips here were cut with other settings" in r.stderr
    assert "--force" in r.stderr and "Traceback" not in r.stderr

    r = autodrive(tmp_path, "build", "recipe.yaml", "--force")
    assert r.returncode == 2, r.stdout + r.stderr  # 2 clips of Sudden Stop: a test of 2 is too big
    assert "class 'Sudden Stop': 2 clips in 2 videos" in r.stderr
    for words in ("max_test_fraction", "on_short: take_available", 'rule-splits.md, "A new class'):
        assert words in r.stderr
    page = Path(__file__).resolve().parents[1] / "docs" / "own-data" / "rule-splits.md"
    assert "## A new class, from a copied templates folder" in page.read_text()

    write_recipe(tmp_path, templates="my_templates", test_per_class=1, on_short="take_available")
    r = autodrive(tmp_path, "build", "recipe.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    # Near-Collision lost two videos to the new class: its one clip stays in training.
    assert "warning: class 'Near-Collision' has no clips for the test split (of 1)" in r.stdout
    build = tmp_path / "build"
    clips = pq.read_table(build / "chunk" / "clips.parquet").column("label").to_pylist()
    assert clips.count("Sudden Stop") == 2
    mcq = [
        row
        for rel in data_files(build, "mcq").values()
        for row in pq.read_table(build / rel).to_pylist()
    ]
    sudden = [row for row in mcq if row["label"] == "Sudden Stop"]
    assert {row["split"] for row in sudden} == {"train", "test"}
    assert all("Sudden Stop" in row["options"] for row in mcq)

    # Eval of that build: the build's taxonomy (from provenance.json), not the bundled one.
    with FakeOpenAIServer(model="fake-vlm") as server:
        ask = ["eval", "--model", "fake-vlm", "--base-url", server.base_url, "--dataset", "build"]
        r = autodrive(tmp_path, *ask, "--out", "eval")
        assert r.returncode == 0, r.stdout + r.stderr
        names = CLASSES.replace("'", "").replace("[", "").replace("]", "")
        assert f"[eval] taxonomy (the dataset's provenance.json): {names}" in r.stdout
        report = json.loads((tmp_path / "eval" / "report.json").read_text())
        assert report["classes"] == names.split(", ")  # scored on the build's four classes
        bundled_taxonomy = str(bundled("templates", "taxonomy.yaml"))
        r = autodrive(tmp_path, *ask, "--out", "eval2", "--taxonomy", bundled_taxonomy)
        assert r.returncode == 2
        assert "options ['Sudden Stop'] are not in the taxonomy" in r.stderr
