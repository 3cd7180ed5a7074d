"""The daemon benchmark's webhook receiver: ``python -m bench._receiver`` (another process).

A raw asyncio HTTP/1.1 keep-alive server on 127.0.0.1, so neither the receiver nor the bench's
GIL is what is being measured. It verifies every signature with :func:`delivery.verify` and
answers 200 (401 for a bad signature). Protocol, one line each:

- stdout, first: ``port N``.
- stdin: ``secret PATH SECRET`` registers an endpoint's secret for requests to ``PATH``.
- stdout, one per request: ``r RECEIVED EVENT TOOL_CALL_ID PATH VERIFIED``, where ``RECEIVED`` is
  ``time.time()`` when the whole request was read and ``VERIFIED`` is ``1``, ``0`` (bad
  signature) or ``-`` (no secret registered for that path).

It ignores SIGINT (the bench cleans up) and exits when its stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import time
from typing import Any

from delivery import SignatureError, verify

_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
_BAD = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n"

secrets_by_path: dict[str, str] = {}


class _Http(asyncio.Protocol):
    """Just enough HTTP/1.1: each request's head and body, one answer, keep-alive."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            headers = {}
            for header in lines[1:]:
                name, _, value = header.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            received = time.time()
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            path = lines[0].split(" ")[1] if " " in lines[0] else "?"
            self.transport.write(_answer(received, path, headers, body))


def _answer(received: float, path: str, headers: dict[str, str], body: bytes) -> bytes:
    secret = secrets_by_path.get(path)
    verified = "-"
    if secret is not None:
        try:
            verify(secret, headers, body)
            verified = "1"
        except SignatureError:
            verified = "0"
    try:
        document = json.loads(body)
        event = str(document.get("event"))
        tool_call_id = document.get("data", {}).get("toolCallId")
    except (ValueError, AttributeError):
        event, tool_call_id = "?", None
    sys.stdout.write(f"r {received:.6f} {event} {tool_call_id} {path} {verified}\n")
    sys.stdout.flush()
    return _BAD if verified == "0" else _OK


def _read_commands(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    for line in sys.stdin:
        parts = line.split()
        if len(parts) == 3 and parts[0] == "secret":
            secrets_by_path[parts[1]] = parts[2]
    loop.call_soon_threadsafe(stop.set)  # the bench is gone


async def _main() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    server = await loop.create_server(_Http, "127.0.0.1", 0, backlog=1024)
    sys.stdout.write(f"port {server.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    threading.Thread(target=_read_commands, args=(loop, stop), daemon=True).start()
    await stop.wait()
    server.close()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_main())
