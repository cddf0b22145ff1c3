"""Real servers for the broker tests: any ASGI app, or the broker itself, under Hypercorn on
127.0.0.1 with an ephemeral port bound before start (no port race), and throwaway TLS files."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.typing import Framework

from xtts_broker.serve import run_broker
from xtts_broker.settings import BrokerSettings
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
