"""A plain (non-editable) install ships the package with its bundled data files."""

import subprocess
import sys
import sysconfig
import zipfile

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_wheel_installs_without_the_checkout(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        check=True,
    )
    (wheel,) = (tmp_path / "dist").glob("vlm_autodrive-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    # Every module of every stage package: a package missing from pyproject's list fails.
    modules = [
        f"vlm_autodrive/{f.relative_to(REPO).as_posix()}"
        for top in ("builders", "trainer")
        for f in (REPO / top).rglob("*.py")
    ]
    assert len(modules) > 60
    for expected in (
        *modules,
        "vlm_autodrive/cli.py",
        "vlm_autodrive/builders/dataset/show_page.html.jinja",
        "vlm_autodrive/templates/taxonomy.yaml",
        "vlm_autodrive/templates/captions/detailed.jinja",
        "vlm_autodrive/recipes/quickstart.yaml",
        "vlm_autodrive/recipes/adapters/dota.yaml",
        "vlm_autodrive/recipes/train/grpo_tiny_cpu.yaml",
        "vlm_autodrive/recipes/train/cosmos_rl_grpo.toml",
    ):
        assert expected in names
    assert not [n for n in names if n.split("/")[0] in {"builders", "trainer", "tests"}]
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    # -S skips site-packages' .pth files, so the editable install cannot answer imports;
    # the dependencies are reached through PYTHONPATH instead.
    deps = sysconfig.get_paths()["purelib"]
    code = (
        "import vlm_autodrive, sys;"
        "from vlm_autodrive.builders.core.taxonomy import load_taxonomy;"
        "from vlm_autodrive.resources import resolve_recipe_path;"
        "assert str(vlm_autodrive.__file__).startswith(sys.argv[1]), vlm_autodrive.__file__;"
        "print(load_taxonomy().names, resolve_recipe_path('recipes/quickstart.yaml').name)"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code, str(target)],
        env={"PYTHONPATH": f"{target}:{deps}"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Near-Collision" in out and "quickstart.yaml" in out
