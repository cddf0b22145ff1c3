"""The servers the hostile-input suite attacks, and the normal session that proves each survived.

Two targets, each real processes on 127.0.0.1:

- ``balancer``: ``python -m xtts_balancer serve`` in standalone mode on the deterministic
  ``tone`` backend (no torch in the worker's hot path, so thousands of sessions are cheap), with
  the suite's API keys, the ``narrator`` clip and ``limits.max_message_bytes`` 4096;
- ``broker``: the real broker (in a thread of this process, plain ws) in front of a second tone
  balancer in broker mode, which registers with it and accepts only streams the broker signed.

:func:`assert_serves` runs one ordinary stream (BOS, a sentence, EOS) and checks that the audio
is complete: the tone backend gives exactly ``ms_per_char`` of audio per character.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from balancer_server import (
    CLIP_VOICE,
    KEY,
    Reply,
    Server,
    base_config,
    converse,
    start_server,
)
from broker_servers import CLIENT_KEY, SECRET, BrokerThread, eventually
from websockets.sync.client import connect

#: Slots of each tone balancer (one worker): a concurrent fuzzer is refused only for its input.
SLOTS = 16
#: Audio per character of the tone backend (``model.backend_options.ms_per_char``).
MS_PER_CHAR = 20.0
#: The sentence of every "still serves" check, and the PCM bytes it must give at 16 kHz.
SENTENCE = "Still here."
SENTENCE_BYTES = int(len(SENTENCE) * MS_PER_CHAR * 16) * 2
STREAM_PATH = f"/v1/text-to-speech/{CLIP_VOICE}/stream-input"
MULTI_PATH = f"/v1/text-to-speech/{CLIP_VOICE}/multi-stream-input"
QUERY = "?output_format=pcm_16000"


@dataclass(frozen=True)
class Target:
    """Where a hostile client connects, with which key, and which balancer does the work."""

    name: str
    port: int
    key: str
    balancer: Server

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str = STREAM_PATH) -> str:
        return f"ws://127.0.0.1:{self.port}{path}{QUERY}"


def tone_config(model_files: tuple[Path, Path], **sections: dict[str, Any]) -> dict[str, Any]:
    """A balancer on the tone backend; enough slots and per-key sessions for a concurrent
    fuzzer, so refusals come from bad input rather than from capacity."""
    model_dir, voices = model_files
    config = base_config(model_dir, voices)
    config["model"].update(backend="tone", backend_options={"ms_per_char": MS_PER_CHAR})
    config["workers"]["slots_per_worker"] = SLOTS
    config["queue"] = {"max_queue": 64, "queue_timeout_s": 10.0}
    config["auth"]["max_sessions_per_key"] = 256
    config["stream"]["pacing_lead_ms"] = 10_000.0  # no real-time pacing: audio as fast as made
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


def start_balancer(directory: Path, config: dict[str, Any]) -> Server:
    directory.mkdir(parents=True, exist_ok=True)
    server = start_server(directory, config)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def standalone(
    tmp: Path, model_files: tuple[Path, Path], **sections: dict[str, Any]
) -> Iterator[Target]:
    """The ``balancer`` target."""
    server = start_balancer(tmp / "balancer", tone_config(model_files, **sections))
    try:
        yield Target("balancer", server.port, KEY, server)
    finally:
        server.stop()


@contextlib.contextmanager
def brokered(
    tmp: Path, model_files: tuple[Path, Path], **sections: dict[str, Any]
) -> Iterator[tuple[Target, BrokerThread]]:
    """The ``broker`` target: a broker and one tone balancer registered with it."""
    broker = BrokerThread(cluster={"heartbeat_interval_s": 1.0, "heartbeat_ttl_s": 10.0})
    broker.start("deep")
    config = tone_config(model_files, **sections)
    config["service"].update(
        standalone_mode=False, broker_host="127.0.0.1", broker_port=broker.port
    )
    config["cluster"] = {
        "secret": SECRET,
        "balancer_id": f"hostile-{secrets.token_hex(3)}",
        "broker_url": broker.url,
        "retry_interval_s": 0.2,
    }
    server: Server | None = None
    try:
        server = start_balancer(tmp / "brokered", config)
        eventually(lambda: _healthy(broker.url), "the balancer to register with the broker")
        yield Target("broker", broker.port, CLIENT_KEY, server), broker
    finally:
        if server is not None:
            server.stop()
        broker.stop()


def _healthy(url: str) -> bool:
    return bool(httpx.get(url + "/ready", timeout=5).json().get("healthy_balancers"))


def speak(target: Target, path: str = STREAM_PATH) -> Reply:
    """One ordinary session on ``target``: BOS, :data:`SENTENCE`, EOS (or, on the
    multi-stream socket, the same in one context and then ``close_socket``)."""
    with connect(
        target.ws_url(path), additional_headers={"xi-api-key": target.key}, open_timeout=10
    ) as ws:
        if path == MULTI_PATH:
            return converse(
                ws,
                {"text": " ", "context_id": "c"},
                {"text": SENTENCE, "context_id": "c", "flush": True},
                {"context_id": "c", "close_context": True},
                {"close_socket": True},
            )
        return converse(ws, {"text": " "}, {"text": SENTENCE}, {"text": ""})


def assert_serves(target: Target) -> None:
    """``target`` is up and a normal stream on each socket kind gets its complete audio."""
    assert target.balancer.process.poll() is None, target.balancer.logs()
    for path in (STREAM_PATH, MULTI_PATH):
        reply = speak(target, path)
        assert reply.error is None, (path, reply)
        assert reply.close_code == 1000, (path, reply)
        assert len(reply.audio_bytes) == SENTENCE_BYTES, (path, len(reply.audio_bytes), reply)
        assert reply.messages[-1].get("isFinal") is True, (path, reply)


def idle_slots(target: Target) -> int:
    """Free slots of the balancer doing ``target``'s work, as it reports them itself."""
    reply = httpx.get(target.balancer.http_url + "/workers/idle", timeout=5)
    return int(reply.json()["idle_workers"])


class ErrorRecords(logging.Handler):
    """Keeps ERROR records of this process (the in-process broker) for :func:`assert_healthy`."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @contextlib.contextmanager
    def installed(self) -> Iterator[ErrorRecords]:
        root = logging.getLogger()
        root.addHandler(self)
        try:
            yield self
        finally:
            root.removeHandler(self)


def assert_healthy(target: Target, errors: ErrorRecords) -> None:
    """After an attack: nothing logged an error or a traceback, every slot came back, and a
    normal session on each socket kind gets its complete audio."""
    log = target.balancer.log.read_text(errors="replace")
    assert "Traceback" not in log and " ERROR " not in log, target.balancer.logs()
    assert [r.getMessage() for r in errors.records] == []
    eventually(lambda: idle_slots(target) == SLOTS, "every slot to be free again", timeout=10)
    assert_serves(target)


def error_of(response: httpx.Response) -> str:
    """The one-line reason of a JSON error answer, for assertion messages."""
    with contextlib.suppress(ValueError):
        return json.dumps(response.json())[:200]
    return response.text[:200]


def snapshot(*roots: Path) -> dict[Path, tuple[int, int]]:
    """Every file under ``roots`` with its size and modification time."""
    found: dict[Path, tuple[int, int]] = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                stat = path.stat()
                found[path] = (stat.st_size, stat.st_mtime_ns)
    return found
