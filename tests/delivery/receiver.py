"""A real HTTP receiver on loopback for the delivery tests, with one behaviour per path.

``/ok`` 204 · ``/status/NNN`` that status · ``/hang`` never answers (until the server stops) ·
``/slow`` answers 200 after ``slow_s`` · ``/redirect`` 302 to ``/ok`` · ``/huge`` 200 with a
20 MiB body.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HUGE_BODY_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when the request was read


class Receiver:
    """A threaded HTTP/1.1 server on 127.0.0.1 that records every request it reads."""

    def __init__(self, slow_s: float = 1.0) -> None:
        self.slow_s = slow_s
        self.requests: list[Received] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.requests.append(Received(self.path, headers, body, time.monotonic()))
                receiver.respond(self)

        class Server(ThreadingHTTPServer):
            # The default listen backlog of 5 drops SYNs when many deliveries connect at once.
            request_queue_size = 256
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        if path.startswith("/status/"):
            self._send(handler, int(path.rsplit("/", 1)[1]), b"nope")
        elif path == "/hang":
            self.stopping.wait(60)
        elif path == "/slow":
            self.stopping.wait(self.slow_s)
            self._send(handler, 200, b"ok")
        elif path == "/redirect":
            handler.send_response(302)
            handler.send_header("location", self.url("/ok"))
            handler.send_header("content-length", "0")
            handler.end_headers()
        elif path == "/huge":
            handler.send_response(200)
            handler.send_header("content-length", str(HUGE_BODY_BYTES))
            handler.end_headers()
            chunk = b"x" * 65536
            try:
                for _ in range(HUGE_BODY_BYTES // len(chunk)):
                    handler.wfile.write(chunk)
            except OSError:
                pass  # the client stopped reading, as it should
        else:
            self._send(handler, 204, b"")

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def refused_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/nobody"
