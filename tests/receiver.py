"""A real HTTP receiver on loopback that records every webhook it gets."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event(self) -> str:
        return str(self.json["event"])


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 200
    delay_s: float = 0.0  # answer this late (a hanging receiver)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self, event_type: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.received if event_type is None or r.event == event_type]

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 30.0
    ) -> list[Received]:
        """Wait until predicate(received) holds; returns what was received."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.events()
            if predicate(got):
                return got
            time.sleep(0.05)
        got = self.events()
        raise AssertionError(
            f"receiver: condition not met in {timeout}s; got {[r.json for r in got]}"
        )


@contextmanager
def run_receiver(path: str = "/hook") -> Iterator[Receiver]:
    """Serve on 127.0.0.1:<free port>; yields the Receiver, whose url ends in ``path``."""
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            receiver = state["r"]
            with receiver.lock:
                receiver.received.append(
                    Received({k.lower(): v for k, v in self.headers.items()}, body)
                )
            if receiver.delay_s:
                time.sleep(receiver.delay_s)
            self.send_response(receiver.status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state["r"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}{path}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["r"]
    finally:
        server.shutdown()
        server.server_close()
