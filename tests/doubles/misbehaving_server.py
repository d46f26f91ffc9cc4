"""An OpenAI-compatible server that misbehaves at the HTTP level, for fault tests.

It is tests/doubles/fake_server.py (real HTTP/1.1 on a loopback port, `/v1/models`
answered properly so the client's start-up check passes) whose chat completions do what
`mode` says (changeable while it runs):

- `ok`: a proper answer (fake_server's);
- `hang`: reads the request, never answers;
- `drip`: sends the status line and headers (a long Content-Length), then one byte of
  the body every `drip_every` seconds: every read is quick, the answer never ends;
- `status500`: HTTP 500 with a JSON error;
- `invalid_json`: HTTP 200 whose body is not JSON;
- `drop`: reads the request and closes the connection without a word;
- `fewer`: a proper answer with one choice fewer than `n` asked for;
- `huge`: a proper answer whose text is `huge_chars` characters long.

`chat_requests` counts the chat requests received, whatever the mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from tests.doubles.fake_server import FakeOpenAIServer

MODES = ("ok", "hang", "drip", "status500", "invalid_json", "drop", "fewer", "huge")


class MisbehavingServer(FakeOpenAIServer):
    """See the module docstring."""

    def __init__(
        self, mode: str = "ok", drip_every: float = 0.5, huge_chars: int = 8_000_000, **kw
    ):
        super().__init__(**kw)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode = mode
        self.drip_every = drip_every
        self.huge_chars = huge_chars
        self.chat_requests = 0

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
                if method == "POST" and path.split("?")[0].endswith("/chat/completions"):
                    self.chat_requests += 1
                    if not await self._misbehave(json.loads(body or b"{}"), writer):
                        return  # the connection is closed (drop) or never answered
                    continue
                status, payload = await self._route(method, path.split("?")[0], body)
                _send(writer, status, json.dumps(payload).encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _misbehave(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        """Answer one chat request as `mode` says; False when the connection is done."""
        mode = self.mode
        if mode == "hang":
            await asyncio.Event().wait()
        if mode == "drop":
            return False
        if mode == "drip":
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n"
            )
            while True:
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(self.drip_every)
        if mode == "status500":
            _send(writer, 500, b'{"error": {"message": "scripted internal error"}}')
        elif mode == "invalid_json":
            _send(writer, 200, b'{"id": "chatcmpl-x", "choices": [{"index": 0, "mess')
        else:
            answer = self._completion(request)
            if mode == "fewer":
                answer["choices"] = answer["choices"][:-1]
            elif mode == "huge":
                answer["choices"][0]["message"]["content"] = "x" * self.huge_chars
            _send(writer, 200, json.dumps(answer).encode())
        await writer.drain()
        return True


def _send(writer: asyncio.StreamWriter, status: int, data: bytes) -> None:
    reason = {200: "OK", 500: "Internal Server Error"}.get(status, "Error")
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: keep-alive\r\n\r\n".encode()
        + data
    )
