"""A fake broker: a plain HTTP server in a thread that checks every request's signature with
:func:`xtts_core.cluster.verify_request`, as the real broker does, and records what it got."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from xtts_core.cluster import HEARTBEAT_PATH, REGISTER_PATH, RegistrationAccepted, verify_request

__all__ = ["SECRET", "FakeBroker", "running"]

SECRET = "cluster-secret-for-tests"


class FakeBroker(ThreadingHTTPServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.hosts: list[str] = []
        """The ``Host`` header of each call."""
        self.forget = False  # answer the next heartbeat with 404
        self.lock = threading.Lock()

    def paths(self) -> list[str]:
        with self.lock:
            return [path for path, _ in self.calls]


class _Handler(BaseHTTPRequestHandler):
    server: FakeBroker

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        headers = {name.lower(): value for name, value in self.headers.items()}
        verify_request(SECRET, "POST", self.path, headers, body=body)  # raises if unsigned
        with self.server.lock:
            self.server.calls.append((self.path, json.loads(body)))
            self.server.hosts.append(headers.get("host", ""))
            forget, self.server.forget = self.server.forget, False
        if self.path == REGISTER_PATH:
            reply = RegistrationAccepted(heartbeat_interval_s=0.2, heartbeat_ttl_s=5)
            self._send(200, reply.model_dump_json().encode())
        elif self.path == HEARTBEAT_PATH and forget:
            self._send(404, b'{"detail": "not registered"}')
        else:
            self._send(200, b'{"status": "ok"}')

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def running(host: str = "127.0.0.1", port: int = 0) -> Iterator[FakeBroker]:
    """A :class:`FakeBroker` serving in a thread for the ``with`` block."""
    server = FakeBroker(host, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
