"""Real servers for the broker tests: any ASGI app, or the broker itself, under Hypercorn on
127.0.0.1 with an ephemeral port bound before start (no port race), the broker in a thread for
synchronous clients, and throwaway TLS files."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.typing import Framework

from xtts_broker.serve import run_broker
from xtts_broker.settings import BrokerSettings, Strategy
from xtts_core.cluster import hash_api_key

SECRET = "cluster-secret-for-tests-0123"
CLIENT_KEY = "client-key-for-tests"


def make_settings(**sections: dict[str, Any]) -> BrokerSettings:
    """Broker settings for tests: loopback, fast timings, one client key; ``sections`` override
    keys of a section (``cluster={"heartbeat_ttl_s": 1}``)."""
    values: dict[str, dict[str, Any]] = {
        # No pings: Hypercorn's ping task outlives a closed socket by up to one interval, which
        # only delays shutdown, but every test shuts a broker down.
        "service": {
            "host": "127.0.0.1",
            "graceful_timeout_s": 2.0,
            "balancer_timeout_seconds": 1.0,
            "websocket_ping_interval_s": None,
        },
        "cluster": {"secret": SECRET, "heartbeat_interval_s": 5.0, "heartbeat_ttl_s": 15.0},
        "auth": {"api_key_hashes": [hash_api_key(CLIENT_KEY)]},
        "routing": {"connect_timeout_s": 2.0},
    }
    for name, overrides in sections.items():
        values[name] = {**values.get(name, {}), **overrides}
    return BrokerSettings(**values)


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a certificate it signed for 127.0.0.1, as PEM files."""

    ca: Path
    certfile: Path
    keyfile: Path


def write_tls_files(directory: Path) -> TlsFiles:
    """A fresh ``trustme`` CA and a server certificate for 127.0.0.1 and localhost, written to
    ``directory`` (certificate and key apart, as ``service.tls_certfile``/``tls_keyfile``)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    cert.cert_chain_pems[0].write_to_path(str(files.certfile))
    cert.private_key_pem.write_to_path(str(files.keyfile))
    return files


def _bound_socket(port: int = 0) -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock, sock.getsockname()[1]


async def _wait_listening(port: int, task: asyncio.Task[None]) -> None:
    for _ in range(200):
        if task.done():
            task.result()  # raises the server's start-up error
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@contextlib.asynccontextmanager
async def serve_app(app: Framework) -> AsyncIterator[int]:
    """Serve ``app``; yields its port; stops it (gracefully) on exit."""
    sock, port = _bound_socket()
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.graceful_timeout = 0.2
    config.accesslog = None
    shutdown = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=shutdown.wait))
    try:
        await _wait_listening(port, task)
        yield port
    finally:
        shutdown.set()
        await task


@contextlib.asynccontextmanager
async def serve_broker(settings: BrokerSettings, port: int = 0) -> AsyncIterator[str]:
    """Run the broker as ``xtts-broker`` does (with its drain); yields ``http://127.0.0.1:port``,
    or ``https://`` when the settings name TLS files.

    ``port`` reuses a port (a broker restart); 0 picks a free one."""
    sock, port = _bound_socket(port)
    shutdown = asyncio.Event()
    task = asyncio.create_task(run_broker(settings, shutdown, sock=sock))
    try:
        await _wait_listening(port, task)
        yield f"{'https' if settings.service.tls else 'http'}://127.0.0.1:{port}"
    finally:
        shutdown.set()
        await task


def eventually(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


class BrokerThread:
    """The real broker on its own event loop in a daemon thread, so that synchronous clients
    (the official SDK, subprocess balancers) can use it; restartable on its port.

    Args:
        tls: serve https/wss with these files; plain http/ws without.
        sections: settings overrides as for :func:`make_settings` (``service.strategy`` is
            :meth:`start`'s).
    """

    def __init__(self, tls: TlsFiles | None = None, **sections: dict[str, Any]) -> None:
        self._tls = (
            {"tls_certfile": str(tls.certfile), "tls_keyfile": str(tls.keyfile)} if tls else {}
        )
        self._sections = sections
        self.strategy: Strategy = "deep"
        self.port = 0  # 0 until the first start picks a free port, then kept across restarts
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, strategy: Strategy) -> None:
        sections = dict(self._sections)
        service = {**sections.pop("service", {}), **self._tls, "strategy": strategy}
        settings = make_settings(service=service, **sections)
        listening = threading.Event()

        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            async with serve_broker(settings, self.port) as url:
                self.url, self.port = url, int(url.rsplit(":", 1)[1])
                listening.set()
                await self._stop.wait()

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # re-raised in the test thread by start() or stop()
                self._error = exc
            finally:
                listening.set()

        self.strategy, self._error = strategy, None
        self._thread = threading.Thread(target=run, name="broker", daemon=True)
        self._thread.start()
        listening.wait(30)
        self._raise()

    def stop(self) -> None:
        """The broker's graceful shutdown (drain, then stop serving)."""
        assert self._loop is not None and self._stop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the broker did not stop"
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error
