"""A stand-in for vLLM's `python`: what `LocalVLLMServer` starts, without vLLM.

Called as the server's interpreter would be (`PY -m vllm.entrypoints.openai.api_server
--model M --host H --port P ...`, through a wrapper script that tests write), it writes
log lines like a starting server and then, by `FAKE_VLLM` in its environment:

- `die`: writes 30 numbered log lines and exits with code 3 (a server that fails to
  start: the message must show the log's last lines);
- `serve` (default): waits `FAKE_VLLM_DELAY` seconds (default 1.5), then serves
  `/v1/models` and chat completions on the port with tests/doubles/fake_server.py,
  each answer after `FAKE_VLLM_ANSWER_DELAY` seconds (default 0). With
  `FAKE_VLLM_ENGINE=1` it first starts a child process that sleeps, as vLLM starts its
  engine core (so tests can check that a killed build leaves no grandchild behind).
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv: list[str]) -> int:
    if argv[:1] == ["-c"]:  # another use of the interpreter (the CPU build check): a python
        sys.argv = ["-c", *argv[2:]]
        exec(argv[1], {"__name__": "__main__"})
        return 0
    args = argv[2:] if argv[:2] == ["-m", "vllm.entrypoints.openai.api_server"] else argv
    opts = {k: v for k, v in itertools.pairwise(args) if k.startswith("--")}
    print(f"fake vLLM: {' '.join(argv)}", flush=True)
    if os.environ.get("FAKE_VLLM") == "die":
        for i in range(1, 31):
            print(f"engine log line {i:02d}", flush=True)
        print("RuntimeError: fake engine failed to start", flush=True)
        return 3
    if os.environ.get("FAKE_VLLM_ENGINE") == "1":
        import subprocess

        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    time.sleep(float(os.environ.get("FAKE_VLLM_DELAY", "1.5")))
    from tests.doubles.fake_server import main as serve

    name = opts.get("--served-model-name") or opts.get("--model", "fake-model")
    delay = os.environ.get("FAKE_VLLM_ANSWER_DELAY", "0")
    args = ["--host", opts["--host"], "--port", opts["--port"], "--model", name]
    return serve([*args, "--delay", delay])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
