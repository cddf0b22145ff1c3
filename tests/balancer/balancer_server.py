"""Helpers for the balancer tests: start a real server over real worker processes, talk to it.

The ``server`` fixture (conftest.py) starts ``python -m xtts_balancer serve`` once per test
session: Hypercorn on sockets this process bound on 127.0.0.1 (handed over as ``fd://N``, so there
is no port race), plain ws for the websocket tests and TLS with a throwaway ``trustme``
certificate for the official SDK (which insists on wss), two worker processes on the tiny random
checkpoint with one torch thread each, short generations (``max_new_codes``), a small queue and
short timeouts so the capacity tests run in seconds. Tests talk to it with real ``websockets``
clients. The server's log is printed when a test fails, to explain it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile
import trustme
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from xtts_balancer.launch import listen_local, spawn_balancer
from xtts_balancer.settings import hash_api_key

KEY = "test-key-0123456789"
OTHER_KEY = "other-key-0123456789"
MAX_SESSIONS_PER_KEY = 3
ADMIN_KEY = "admin-key-0123456789"
CLIP_VOICE = "narrator"


@dataclass
class Reply:
    """Everything a client received on one socket, and how it closed."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    @property
    def audio(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("audio")]

    @property
    def audio_bytes(self) -> bytes:
        return b"".join(base64.b64decode(m["audio"]) for m in self.audio)

    @property
    def error(self) -> dict[str, Any] | None:
        errors = [m for m in self.messages if "error" in m]
        return errors[-1] if errors else None


@dataclass
class Server:
    """A running balancer subprocess: plain http/ws on ``port``, https/wss on ``tls_port``."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    tls_port: int | None
    ca_file: Path | None
    admin_port: int | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        assert self.tls_port is not None
        return f"https://127.0.0.1:{self.tls_port}"

    def ws_url(self, voice: str = CLIP_VOICE, query: str = "output_format=pcm_16000") -> str:
        return f"ws://127.0.0.1:{self.port}/v1/text-to-speech/{voice}/stream-input?{query}"

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.http_url + path, timeout=10)

    def connect(
        self, voice: str = CLIP_VOICE, query: str = "output_format=pcm_16000", key: str | None = KEY,
        extra_headers: dict[str, str] | None = None,
    ) -> ClientConnection:  # fmt: skip
        headers = {"xi-api-key": key} if key else {}
        headers.update(extra_headers or {})
        return connect(
            self.ws_url(voice, query), additional_headers=headers, open_timeout=10,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 120.0, workers: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.logs()}")
            try:
                if self.get("/ready").json().get("workers_ready", 0) >= workers:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server not ready after {timeout} s:\n{self.logs()}")

    def workers(self) -> list[dict[str, Any]]:
        workers: list[dict[str, Any]] = self.get("/workers").json()["workers"]
        return workers

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        return stop_process(self.process, sig, timeout)


def stop_process(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30.0
) -> int:
    """Send ``sig`` to a running ``process`` and wait; SIGKILL it if it has not exited within
    ``timeout`` seconds. Returns its exit status."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def converse(ws: ClientConnection, *messages: dict[str, Any], timeout: float = 30.0) -> Reply:
    """Send ``messages`` in order, then read until the server closes the socket."""
    reply = Reply()
    try:
        for message in messages:
            ws.send(json.dumps(message))
        return read_until_closed(ws, reply, timeout)
    except ConnectionClosed:
        return read_until_closed(ws, reply, timeout)


def read_until_closed(
    ws: ClientConnection, reply: Reply | None = None, timeout: float = 30.0
) -> Reply:
    reply = reply or Reply()
    deadline = time.monotonic() + timeout
    try:
        while True:
            raw = ws.recv(timeout=max(deadline - time.monotonic(), 0.01))
            reply.messages.append(json.loads(raw))
    except ConnectionClosed:
        pass
    except TimeoutError:
        ws.close()
        raise
    if ws.close_code is not None:
        reply.close_code = ws.close_code
        reply.close_reason = ws.close_reason or ""
    return reply


def start_server(
    tmp: Path, config: dict[str, Any], *, tls: trustme.CA | None = None, admin: bool = False
) -> Server:
    """Start a balancer subprocess on sockets bound here (see the module docstring).

    With ``tls`` it listens twice: plain (``port``, for the websocket tests) and TLS
    (``tls_port``, for the SDK). ``service.port`` is set to the plain port, so an advertised URL
    derived from it is right. With ``admin`` it also gets an admin listener (``admin_port``,
    which ``admin.port`` is set to).
    """
    plain = listen_local(64)
    port = plain.getsockname()[1]
    config["service"] = {**config.get("service", {}), "host": "127.0.0.1", "port": port}
    sockets = [plain]
    args = ["--bind", f"fd://{plain.fileno()}"]
    tls_port: int | None = None
    if tls is not None:
        secure = listen_local(64)
        sockets.append(secure)
        tls_port = secure.getsockname()[1]
        args = ["--bind", f"fd://{secure.fileno()}", "--insecure-bind", f"fd://{plain.fileno()}"]
        cert = tls.issue_cert("127.0.0.1", "localhost")
        cert.private_key_and_cert_chain_pem.write_to_path(str(tmp / "server.pem"))
        tls.cert_pem.write_to_path(str(tmp / "ca.pem"))
        config["service"]["tls_certfile"] = config["service"]["tls_keyfile"] = str(
            tmp / "server.pem"
        )
    admin_port: int | None = None
    if admin:
        admin_sock = listen_local(64)
        sockets.append(admin_sock)
        admin_port = admin_sock.getsockname()[1]
        config["admin"] = {**config.get("admin", {}), "port": admin_port}
        args += ["--admin-bind", f"fd://{admin_sock.fileno()}"]
    log = tmp / "server.log"
    with log.open("wb") as out:
        process = spawn_balancer(config, tmp, sockets, args, out)
    ca_file = tmp / "ca.pem" if tls is not None else None
    return Server(process, port, log, tls_port, ca_file, admin_port)


@contextlib.contextmanager
def serving(tmp: Path, config: dict[str, Any]) -> Iterator[Server]:
    """:func:`start_server`, ready (one warm worker) for the body, stopped after it."""
    server = start_server(tmp, config)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def write_model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny random checkpoint and a voices_dir with one reference clip (``CLIP_VOICE``)."""
    from xtts_core.random_checkpoint import write_random_checkpoint

    model_dir = write_random_checkpoint(tmp_path_factory.mktemp("tiny"), "tiny", seed=0)
    voices = tmp_path_factory.mktemp("voices")
    rng = np.random.default_rng(0)
    t = np.arange(22050 * 2) / 22050
    clip = 0.3 * np.sin(2 * np.pi * 180 * t) + 0.05 * rng.standard_normal(t.size)
    soundfile.write(voices / f"{CLIP_VOICE}.wav", clip.astype(np.float32), 22050)
    return model_dir, voices


def join_broker(
    config: dict[str, Any], name: str, broker_url: str, broker_port: int, secret: str
) -> None:
    """Put ``config`` in broker mode: balancer ``name`` of the broker at ``broker_url``, signing
    with the cluster ``secret``, retrying registration quickly."""
    config["service"].update(
        standalone_mode=False, broker_host="127.0.0.1", broker_port=broker_port
    )
    config["cluster"] = {
        "secret": secret,
        "balancer_id": name,
        "broker_url": broker_url,
        "retry_interval_s": 0.2,
    }


def base_config(model_dir: Path, voices: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A small, fast configuration; ``sections`` replace whole sections."""
    config: dict[str, Any] = {
        "service": {"instances": 1, "graceful_timeout_s": 2},
        "model": {"directory": str(model_dir), "voices_dir": str(voices), "max_new_codes": 12},
        "workers": {
            "torch_threads": 1,
            "restart_backoff_s": 0.2,
            "startup_timeout_s": 120,
            "warmup_text": "Hi.",
            "stall_timeout_s": 5,
        },
        "queue": {"max_queue": 1, "queue_timeout_s": 1.5},
        "auth": {
            "api_key_hashes": [hash_api_key(KEY), hash_api_key(OTHER_KEY)],
            "max_sessions_per_key": MAX_SESSIONS_PER_KEY,
        },
        "limits": {"max_message_bytes": 4096, "max_text_chars": 600},
        "stream": {"first_chunk_codes": 4, "chunk_codes": 8, "max_chunk_ms": 100},
    }
    config.update(sections)
    return config


def coqui_config(model_dir: Path, voices: Path) -> dict[str, Any]:
    """:func:`base_config` without API keys, as coqui's xtts-streaming-server runs (its clients
    send none)."""
    config = base_config(model_dir, voices, auth={"enabled": False})
    config["limits"] = {"max_text_chars": 600}
    return config
