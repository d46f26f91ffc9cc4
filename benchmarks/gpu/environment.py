"""The GPU check's environment: a virtual environment on top of the GPU image's torch,
the carried wheels installed offline, this project installed without dependencies; and
the device's facts. Standard library only (it runs before any environment exists).

The image's `python3` is itself a virtual environment's interpreter (KINDS.md: its
torch lives in /opt/torch/.venv), and `venv --system-site-packages` exposes the *base*
interpreter's site-packages, not that venv's. So when the new environment cannot import
torch, a `.pth` file adds the outer interpreter's site-packages after its own: packages
installed here win, everything else (torch, transformers, accelerate...) is the image's.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

from common import run_timed

REPO = Path(__file__).resolve().parents[2]
# `make gpu-wheels` writes them there; GPU_CHECK_WHEELS points elsewhere (a test set).
WHEELS = Path(os.environ.get("GPU_CHECK_WHEELS") or REPO / ".whl")
# What the report lists of the environment the parts ran in.
PACKAGES = ("torch", "torchvision", "transformers", "accelerate", "trl", "deepspeed",
            "datasets", "av", "pydantic", "pyarrow", "tokenizers", "vlm-autodrive")  # fmt: skip

FACTS = f"""
import json, importlib.metadata as md
facts = {{}}
try:
    import torch
    facts["torch"] = torch.__version__
    facts["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        facts.update(name=p.name, memory_gib=round(p.total_memory / 2**30, 1),
                     capability=f"{{p.major}}.{{p.minor}}", cuda=torch.version.cuda)
except Exception as e:
    facts["torch_error"] = f"{{type(e).__name__}}: {{e}}"
versions = {{}}
for name in {PACKAGES!r}:
    try:
        versions[name] = md.version(name)
    except md.PackageNotFoundError:
        versions[name] = None
facts["packages"] = versions
try:  # transformers 5.23 renamed gradient_checkpointing to activation_checkpointing
    import dataclasses
    from trl import SFTConfig
    names = {{f.name for f in dataclasses.fields(SFTConfig)}}
    facts["checkpointing_field"] = next(
        n for n in ("activation_checkpointing", "gradient_checkpointing") if n in names)
except Exception as e:
    facts["trl_error"] = f"{{type(e).__name__}}: {{e}}"
print(json.dumps(facts))
"""


def device_facts(python: str, env: dict) -> dict:
    """The device and package versions as the check's environment sees them."""
    proc = subprocess.run([python, "-c", FACTS], capture_output=True, text=True, env=env)
    try:
        facts = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"name": "unknown", "error": (proc.stderr or proc.stdout)[-2000:]}
    facts.setdefault("name", "cpu")
    smi = shutil.which("nvidia-smi")
    if smi:
        q = [smi, "--query-gpu=driver_version,memory.total", "--format=csv,noheader"]
        facts["nvidia_smi"] = subprocess.run(q, capture_output=True, text=True).stdout.strip()
    return facts


def make_gpu_env(work: Path, python: str | None, log: Path) -> tuple[dict, str | None]:
    """(what was done, the environment's python), or (the reason, None) when it could
    not be made. `python` given: use that interpreter as it is."""
    if python:
        return {"python": python, "made": False}, python
    wheels = sorted(WHEELS.glob("*.whl"))
    if not wheels:
        return {"error": f"no wheels in {WHEELS}: run `make gpu-wheels` here and carry .whl"}, None
    venv = work / "venv"
    vpy = str(venv / "bin" / "python")
    report: dict = {"python": vpy, "made": True, "wheels": [w.name for w in wheels]}
    make = [sys.executable, "-m", "venv", "--system-site-packages", str(venv)]
    # A base Python without ensurepip (Debian's, without python3-venv) makes no venv with
    # pip in it: then one without, and the image's own pip installs into it (--python).
    made = (
        Path(vpy).exists()
        or _step(report, log, "venv", make, 60)
        or _step(report, log, "venv_without_pip", [*make, "--without-pip"], 60)
    )
    if not made:
        return report, None
    if not _imports_torch(vpy):
        # addsitedir, not a bare path: .pth files in the image's site-packages count too.
        outer = [p for p in site.getsitepackages() if Path(p).is_dir()]
        lines = [f"import site; site.addsitedir({p!r})" for p in outer]
        (_site_dir(vpy) / "_gpu_image_site.pth").write_text("\n".join(lines) + "\n")
        report["image_site_pth"] = outer
    if not _imports_torch(vpy):
        report["error"] = "the new environment cannot import the image's torch"
        return report, None
    has_pip = subprocess.run([vpy, "-m", "pip", "--version"], capture_output=True).returncode == 0
    pip_cmd = [vpy, "-m", "pip"] if has_pip else [sys.executable, "-m", "pip", "--python", vpy]
    pip = [*pip_cmd, "install", "--no-index", "--find-links", str(WHEELS), "--no-cache-dir",
           "--no-compile", "--disable-pip-version-check", "-q"]  # fmt: skip
    pinned = [_requirement(w) for w in wheels]
    # If a package of the image is older than a wheel's pin and not carried, pip cannot
    # resolve: then install the carried wheels as they are, and `pip check` says what is off.
    no_deps = [*pip, "--no-deps", *map(str, wheels)]
    if not _step(report, log, "wheels", [*pip, *pinned], 240) and not _step(
        report, log, "wheels_no_deps", no_deps, 240
    ):
        return report, None
    # Built with the carried setuptools (>= 77 for pyproject's license string), installed
    # into the venv above: an isolated build would see the image's own through the .pth.
    project = [*pip, "--no-deps", "--no-build-isolation", "-e", str(REPO)]
    if not _step(report, log, "project", project, 120):
        return report, None
    check = subprocess.run([*pip_cmd, "check"], capture_output=True, text=True)
    report["pip_check"] = (check.stdout + check.stderr).strip()[-3000:]
    return report, vpy


def _step(report: dict, log: Path, name: str, cmd: list[str], box: float) -> bool:
    run = run_timed(cmd, box, cwd=REPO, log=log)
    report.setdefault("steps", {})[name] = {"ok": run.ok, "seconds": round(run.seconds, 1)}
    if not run.ok:
        report["steps"][name]["error"] = run.failure()
    return run.ok


def _imports_torch(python: str) -> bool:
    return subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0


def _site_dir(python: str) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip())


def _requirement(wheel: Path) -> str:
    """`name==version` from a wheel's file name (name-version-tags.whl)."""
    name, version = wheel.name.split("-")[:2]
    return f"{name.replace('_', '-')}=={version}"
