"""A small webhook receiver that verifies every request and prints one line per event.

    python examples/receiver.py --port 8080 --secret whsec_...
    python examples/receiver.py --port 8080 --secrets-file secrets.txt   # one secret a line
    WEBHOOK_SECRET=whsec_... python examples/receiver.py

Answers 204 to a verified request, 401 to one whose signature or timestamp is wrong (and says
why on stderr). Only the standard library and ``delivery.verify``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from delivery import SignatureError, verify

# Receivers should not read unbounded bodies either; enforgate's events are a few KiB.
MAX_BODY_BYTES = 1024 * 1024


class Secrets:
    """The secrets to try, from the command line and/or a file re-read when it changes."""

    def __init__(self, given: list[str], path: Path | None) -> None:
        self._given = [s.strip() for s in given if s.strip()]
        self._path = path
        self._mtime = -1.0
        self._from_file: list[str] = []
        self._lock = threading.Lock()

    def all(self) -> list[str]:
        if self._path is None:
            return self._given
        with self._lock:
            try:
                mtime = self._path.stat().st_mtime
            except FileNotFoundError:
                mtime = 0.0
            if mtime != self._mtime:
                self._mtime = mtime
                text = self._path.read_text() if mtime else ""
                self._from_file = [line.strip() for line in text.splitlines() if line.strip()]
            return self._given + self._from_file


def make_handler(secrets: Secrets) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per event is printed below instead

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(413)
                return
            body = self.rfile.read(length)  # the raw bytes: verify exactly what was sent
            headers = {k.lower(): v for k, v in self.headers.items()}
            error: SignatureError | None = None
            for secret in secrets.all():
                try:
                    verify(secret, headers, body)
                except SignatureError as exc:
                    error = exc
                    continue
                error = None
                break
            else:
                reason = error or "no secret configured"
                print(f"rejected: {type(reason).__name__}: {reason}", file=sys.stderr, flush=True)
                self._answer(401)
                return
            event = json.loads(body)
            print(
                f"{event['sentAt']} {event['event']} {headers.get('x-enforgate-delivery')} "
                f"verified {json.dumps(event['data'], ensure_ascii=False)}",
                flush=True,
            )
            self._answer(204)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--secret", action="append", default=[], help="an endpoint's secret")
    parser.add_argument("--secrets-file", type=Path, help="a file with one secret a line")
    args = parser.parse_args(argv)
    given = list(args.secret)
    if os.environ.get("WEBHOOK_SECRET"):
        given.append(os.environ["WEBHOOK_SECRET"])
    if not given and args.secrets_file is None:
        parser.error("give --secret, --secrets-file or WEBHOOK_SECRET")
    server = ThreadingHTTPServer(
        (args.host, args.port), make_handler(Secrets(given, args.secrets_file))
    )
    server.daemon_threads = True
    print(f"listening on http://{args.host}:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
