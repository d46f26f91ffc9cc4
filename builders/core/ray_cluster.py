"""The Ray settings of a build recipe (`engine: ray`, the `ray:` section) and the connection.

In: a `RaySettings` (where the cluster is, what each task may use, how often Ray retries
it). Out: a connected Ray session (`connect`), shared by the chunk stage and the `ray`
generation backend of the same build.

Ray is an optional extra (`pip install 'vlm-autodrive[ray]'`): nothing here imports it
until `connect` is called, and a missing install is a clear message, not a traceback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any

from pydantic import Field

from vlm_autodrive.builders.core.strict import Strict

INSTALL_HINT = "install the extra: pip install 'vlm-autodrive[ray]'"


class RayNotInstalled(ValueError):
    """`engine: ray` or `backend: ray` was asked for, but Ray is not installed."""


class RaySettings(Strict):
    """Where the Ray cluster is and what one chunking task may use."""

    address: str | None = Field(
        None,
        description="the cluster to join: `auto` (a `ray start` on this node), "
        "`ray://host:10001`, or host:6379; unset: RAY_ADDRESS, else a local Ray on this "
        "machine for the duration of the build",
    )
    num_cpus: float = Field(1.0, gt=0, description="CPUs each chunking task reserves")
    memory: int | None = Field(
        None, ge=1, description="bytes of memory each chunking task reserves (scheduling)"
    )
    max_retries: int = Field(
        3,
        ge=0,
        description="times Ray re-runs a chunking task that raised or whose worker died; "
        "a video still failing after them is a reject with its reason",
    )
    local_cpus: int | None = Field(
        None, ge=1, description="CPUs of the local Ray started when no address is given"
    )


def import_ray() -> Any:
    """The `ray` module, or RayNotInstalled naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise RayNotInstalled(f"Ray is not installed: {INSTALL_HINT}") from None
    return ray


def connect(settings: RaySettings | None = None) -> Any:
    """Join (or start) the Ray cluster the settings name; idempotent within a process.

    A session already open (a test's, or an earlier stage's) is reused as it is.
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    settings = settings or RaySettings()
    address = settings.address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address:
        kwargs["address"] = address
    elif settings.local_cpus:
        kwargs["num_cpus"] = settings.local_cpus
    # The toolkit's code must import on every worker: a cluster's nodes have it installed
    # (README); on one machine the workers share this interpreter and its packages.
    with _signal_handlers_kept():
        ray.init(**kwargs)
    return ray


@contextlib.contextmanager
def _signal_handlers_kept():
    """Put back this process's SIGTERM and SIGINT handlers after the block.

    `ray.init` installs a C-level SIGTERM handler in the driver that aborts the process
    (exit -6 and a stack dump); the toolkit's (vlm_autodrive/cli.py) stops the run like
    ^C instead, keeping the finished work, exit 143. A local Ray's processes end with
    the driver either way (Ray shares their fate with it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in kept.items():
            if handler is not None:  # None: set outside Python, nothing to put back
                signal.signal(sig, handler)
