"""A stand-in OpenAI-compatible chat server, for fault tests and the throughput benchmark.

A real HTTP/1.1 server (asyncio streams, keep-alive) on a loopback port that speaks the
`/v1/models` and `/v1/chat/completions` JSON, with scripted behaviour: answer after
`delay` seconds, fail the first `fail_first` requests with `fail_status`, fail every
request with `always_status`, or `hang` without answering. Its answers carry the
reasoning in `reasoning_field` ("reasoning", "reasoning_content") or inline before
`</think>` (`think_inline`), or plain text. It generates nothing: it is for testing
clients, not models.

In-process (tests): `with FakeOpenAIServer(delay=0.1) as s: s.base_url`; attributes may
be changed while it runs. As its own process (the benchmark, kill tests):

    python -m tests.doubles.fake_server --port P --delay 0.2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading
from typing import Any

DEFAULT_ANSWER = "A car drives along a wet road behind a truck"
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}


class FakeOpenAIServer:
    """Scripted OpenAI-compatible server; `requests` counts chat requests received."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = "fake-model",
        delay: float = 0.0,
        fail_first: int = 0,
        fail_status: int = 500,
        always_status: int | None = None,
        hang: bool = False,
        reasoning_field: str | None = None,
        think_inline: bool = False,
        answer: Any = None,
    ) -> None:
        self.host, self.port, self.model = host, port, model
        self.delay = delay
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.always_status = always_status
        self.hang = hang
        self.reasoning_field = reasoning_field
        self.think_inline = think_inline
        self.answer = answer  # None, or (request body, choice index) -> the choice's text
        self.requests = 0
        self.bodies: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- HTTP -----------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                status, payload = await self._route(method, path.split("?")[0], body)
                data = json.dumps(payload).encode()
                writer.write(
                    f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                    "Connection: keep-alive\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _route(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if method == "GET" and path.endswith("/models"):
            return 200, {"object": "list", "data": [{"id": self.model, "object": "model"}]}
        if method != "POST" or not path.endswith("/chat/completions"):
            return 404, {"error": {"message": f"no route {method} {path}"}}
        self.requests += 1
        number = self.requests
        request = json.loads(body or b"{}")
        self.bodies.append(request)
        if self.hang:
            await asyncio.Event().wait()  # never answers; the client must time out
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.always_status is not None:
            return self.always_status, {"error": {"message": "scripted failure"}}
        if number <= self.fail_first:
            return self.fail_status, {"error": {"message": f"scripted failure {number}"}}
        return 200, self._completion(request)

    def _completion(self, request: dict[str, Any]) -> dict[str, Any]:
        n = int(request.get("n") or 1)
        choices = []
        for i in range(n):
            # The default reads as a caption would (a placeholder such as "answer 0" is a
            # degenerate output the parsers refuse); `answer` scripts anything else.
            text = self.answer(request, i) if self.answer else f"{DEFAULT_ANSWER} ({i})"
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if self.reasoning_field:
                message[self.reasoning_field] = f"reasoning {i}"
            elif self.think_inline:
                message["content"] = f"reasoning {i}\n</think>\n\nanswer {i}"
            choices.append({"index": i, "message": message, "finish_reason": "stop"})
        prompt = sum(len(str(m.get("content", "")).split()) for m in request.get("messages", []))
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": self.model,
            "choices": choices,
            "usage": {"prompt_tokens": prompt, "completion_tokens": 2 * n, "total_tokens": 0},
        }

    # -- lifecycle ------------------------------------------------------------------

    async def serve(self, started: threading.Event | None = None) -> None:
        """Serve until cancelled; `started` is set once the port is bound."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        if started is not None:
            started.set()
        with contextlib.suppress(asyncio.CancelledError):
            async with self._server:
                await self._server.serve_forever()

    def start(self) -> FakeOpenAIServer:
        """Serve from a background thread; returns once the port is bound."""
        started = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.serve(started))
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai-server", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("fake server did not start")
        return self

    def stop(self) -> None:
        """Stop listening and drop every open connection."""
        if self._loop is None or self._server is None:
            return
        server = self._server

        def close() -> None:
            server.close()
            with contextlib.suppress(AttributeError):  # Python >= 3.13
                server.close_clients()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()

        self._loop.call_soon_threadsafe(close)
        if self._thread is not None:
            self._thread.join(10)
        self._server = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Scripted OpenAI-compatible server.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    p.add_argument("--model", default="fake-model")
    args = p.parse_args(argv)
    server = FakeOpenAIServer(args.host, args.port, model=args.model, delay=args.delay)

    async def run() -> None:
        started = threading.Event()
        task = asyncio.create_task(server.serve(started))
        while not started.is_set():
            await asyncio.sleep(0.01)
        print(f"listening {server.base_url}", flush=True)
        await task

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
