"""Broker mode and graceful shutdown, on a server of its own talking to a fake broker
(:mod:`fake_broker`)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from balancer_server import KEY, Server, base_config, converse, read_until_closed, start_server
from fake_broker import SECRET, FakeBroker, running

from xtts_core.cluster import (
    DEREGISTER_PATH,
    HEARTBEAT_PATH,
    REGISTER_PATH,
    sign_request,
)

STREAM_PATH = "/v1/text-to-speech/narrator/stream-input"


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    with running() as server:
        yield server


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def signed(session_id: str) -> dict[str, str]:
    return sign_request(SECRET, "GET", STREAM_PATH, session_id=session_id)


def test_broker_mode_lifecycle_and_graceful_shutdown(
    model_files: tuple[Path, Path], tmp_path: Path, broker: FakeBroker
) -> None:
    model_dir, voices = model_files
    config = base_config(model_dir, voices)
    config["queue"]["slot_lease"] = "session"  # an open socket holds its slot
    config["service"].update(
        standalone_mode=False, broker_host="127.0.0.1", broker_port=broker.server_address[1]
    )
    config["cluster"] = {"secret": SECRET, "balancer_id": "bal-1", "retry_interval_s": 0.2}
    srv: Server = start_server(tmp_path, config)
    try:
        srv.wait_ready()
        worker_pid = srv.workers()[0]["pid"]
        wait_for(lambda: HEARTBEAT_PATH in broker.paths())
        path, registration = broker.calls[0]
        assert path == REGISTER_PATH
        assert registration["id"] == "bal-1" and registration["capacity"] == 1
        assert registration["url"] == f"http://127.0.0.1:{srv.port}"

        with srv.connect() as ws:  # a client key is not enough: only the broker may connect
            reply = converse(ws, {"text": " "})
        assert reply.close_code == 1008 and "broker-managed" in reply.error["message"]  # type: ignore[index]

        with srv.connect(key=None, extra_headers=signed("s-1")) as ws:
            reply = converse(ws, {"text": " "}, {"text": "Hello. "}, {"text": ""})
        assert reply.close_code == 1000 and reply.audio
        with srv.connect(key=None, extra_headers=signed("s-1")) as ws:  # a replayed handshake
            reply = converse(ws, {"text": " "})
        assert reply.close_code == 1008, reply
        assert reply.error is not None and "already used" in reply.error["message"], reply

        # HTTP speech follows the same rule: the broker's signature over method and path.
        speech_path = "/v1/text-to-speech/narrator"
        speech_url = f"{srv.http_url}{speech_path}?output_format=pcm_16000"
        unsigned = httpx.post(speech_url, json={"text": "Hi."}, headers={"xi-api-key": KEY})
        assert unsigned.status_code == 403 and "broker-managed" in unsigned.text
        headers = sign_request(SECRET, "POST", speech_path, session_id="h-1")
        response = httpx.post(speech_url, json={"text": "Hi."}, headers=headers, timeout=30)
        assert response.status_code == 200 and response.content
        replayed = httpx.post(speech_url, json={"text": "Hi."}, headers=headers)
        assert replayed.status_code == 403 and "already used" in replayed.text
        token_path = "/v1/single-use-token/tts_websocket"  # the broker mints them, not we
        token_headers = sign_request(SECRET, "POST", token_path, session_id="t-1")
        minted = httpx.post(f"{srv.http_url}{token_path}", headers=token_headers)
        assert minted.status_code == 403 and "the broker mints" in minted.text, minted.text
        assert minted.json()["detail"]["status"] == "invalid_request"

        registrations = broker.paths().count(REGISTER_PATH)
        broker.forget = True  # the broker restarted: the next heartbeat gets 404
        wait_for(lambda: broker.paths().count(REGISTER_PATH) == registrations + 1)

        with srv.connect(key=None, extra_headers=signed("s-2")) as ws:
            ws.send(json.dumps({"text": " "}))
            wait_for(lambda: srv.get("/workers/idle").json()["idle_workers"] == 0)
            t0 = time.monotonic()
            srv.process.send_signal(signal.SIGTERM)
            reply = read_until_closed(ws, timeout=20)
        assert reply.close_code == 1001
        assert reply.error is not None and reply.error["error"] == "shutting_down"
        assert time.monotonic() - t0 >= 1.5  # graceful_timeout_s is 2: it waited first
        assert srv.process.wait(30) == 0
        assert broker.calls[-1] == (DEREGISTER_PATH, {"id": "bal-1"})
    finally:
        srv.stop(signal.SIGKILL)
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)
