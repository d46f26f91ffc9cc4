"""`autodrive mix` and `autodrive publish --to FOLDER`, hit by SIGINT, SIGTERM and SIGKILL
while they write: the run stops as a user expects, the lock is free, the temporary file
of a killed mix (`.train.PID.parquet.tmp`, tens of MB on real builds) is removed by the
next run, and the same command finishes with a clean run's bytes, no row doubled.

A 100k-row mix, a 400-video release of stand-in clips: about 50 s on 2 cores busy with
other work (load 8); the SIGINT cases (slow) 15 s more."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.builders.small_builds import rule_build
from tests.faults.harness import SIGNALS, check_stopped, digest, hurt, lock_is_free, run
from vlm_autodrive.builders.synthetic.configs import write_synthetic_configs

SIZES = {
    "mcq": {"Collision": 1000, "Near-Collision": 5000, "Normal Driving": 30000},
    "caption_vlm": {"Collision": 500, "Near-Collision": 2500, "Normal Driving": 10000},
}
SLOW_SIGINT = pytest.param("SIGINT", marks=pytest.mark.slow)  # the SIGTERM path, by ^C
MIXTURE = """\
name: bal
seed: 7
components:
  - config: mcq
    upsample: {Collision: 15, Near-Collision: 2}
  - config: caption_vlm
    count: 10000
"""


def mix_outputs(build: Path) -> dict[str, str]:
    return {k: v for k, v in digest(build).items() if k.startswith(("data/mix-", "mix/"))}


@pytest.fixture(scope="module")
def mixable(tmp_path_factory):
    """A build with two large configs, a mixture recipe, and a clean mix's outputs."""
    root = tmp_path_factory.mktemp("mix-faults")
    write_synthetic_configs(root / "base", SIZES, varied=False)
    recipe = root / "bal.yaml"
    recipe.write_text(MIXTURE)
    clean = root / "clean"
    shutil.copytree(root / "base", clean)
    done = run(["mix", recipe, "--build", clean])
    assert done.returncode == 0, done.stderr
    return root / "base", recipe, mix_outputs(clean)


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM", SLOW_SIGINT])
def test_mix_survives_a_signal_while_writing(mixable, tmp_path, sig):
    base, recipe, clean = mixable
    build = tmp_path / "build"
    shutil.copytree(base, build)
    out = build / "data" / "mix-bal"

    def writing() -> bool:
        return out.is_dir() and any(out.glob(".train.*.parquet.tmp"))

    h = hurt(["mix", recipe, "--build", build], SIGNALS[sig], writing)
    check_stopped(h, SIGNALS[sig])
    leftover = list(out.glob(".*.tmp"))
    assert bool(leftover) == (sig == "SIGKILL")  # ^C and SIGTERM clean up after themselves
    assert lock_is_free(build)  # (taking the lock removes the leftover: see below)
    again = run(["mix", recipe, "--build", build])
    assert again.returncode == 0, again.stderr
    assert not list(out.glob(".*.tmp")), "the killed run's temporary file is still there"
    assert mix_outputs(build) == clean
    (train,) = out.glob("train-*.parquet")
    ids = pq.read_table(train, columns=["id"])["id"].to_pylist()
    assert len(ids) == len(set(ids))


@pytest.fixture(scope="module")
def releasable(tmp_path_factory):
    """A build of 400 videos' rule configs (stand-in clips) and a clean release's files."""
    root = tmp_path_factory.mktemp("publish-faults")
    build = rule_build(root / "build", videos=400)
    done = run(["publish", build, "--version", "0.1.0", "--to", root / "clean"])
    assert done.returncode == 0, done.stderr
    return build, digest(root / "clean" / "v0.1.0")


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM", SLOW_SIGINT])
def test_publish_to_a_folder_survives_a_signal_while_copying(releasable, tmp_path, sig):
    build, clean = releasable
    target = tmp_path / "release"
    partial = target / ".v0.1.0.partial"
    publish = ["publish", build, "--version", "0.1.0", "--to", target]
    h = hurt(publish, SIGNALS[sig], partial.is_dir)
    check_stopped(h, SIGNALS[sig])
    assert lock_is_free(build)
    assert not (target / "v0.1.0").exists(), "a half release under the final name"
    again = run(publish)
    assert again.returncode == 0, again.stderr
    assert digest(target / "v0.1.0") == clean
    assert sorted(p.name for p in target.iterdir()) == ["v0.1.0"]
