"""Sessions and slots on the tone backend: ``limits.max_sessions`` counts every kind of session,
and a websocket leases its worker slot per utterance, so idle voice-agent sockets hold none.

The tone backend "computes" each character in its own duration (``realtime_factor`` 1), so an
utterance is still running when a test looks at the slots, and its audio length is exact.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile
from balancer_server import CLIP_VOICE, KEY, Server, base_config, start_server
from websockets.sync.client import ClientConnection

from xtts_balancer.backends.tone import SAMPLE_RATE

MS_PER_CHAR = 20
BYTES_PER_CHAR = 2 * SAMPLE_RATE * MS_PER_CHAR // 1000
BOS = {"text": " "}
#: One sentence of about 1.4 s of tone: still running when the next socket asks for a slot.
TURN = "Speak slowly now, please, and take your time with every single word."


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One worker with ONE slot, a queue of four, at most three sessions."""
    voices = tmp_path_factory.mktemp("tone-voices")
    soundfile.write(voices / f"{CLIP_VOICE}.wav", np.zeros(2205, np.float32), 22050)
    config = base_config(Path(), voices, queue={"max_queue": 4, "queue_timeout_s": 20})
    config["model"] = {
        "backend": "tone", "voices_dir": str(voices),
        "backend_options": {"ms_per_char": MS_PER_CHAR, "realtime_factor": 1.0},
    }  # fmt: skip
    config["workers"]["slots_per_worker"] = 1
    config["limits"]["max_sessions"] = 3
    srv = start_server(tmp_path_factory.mktemp("leases"), config)
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def _status(server: Server) -> dict[str, Any]:
    workers: dict[str, Any] = server.get("/workers").json()
    return workers


def _idle(server: Server) -> int:
    count: int = server.get("/workers/idle").json()["idle_workers"]
    return count


def _open(stack: ExitStack, server: Server, count: int) -> list[ClientConnection]:
    sockets = [
        stack.enter_context(server.connect(query="output_format=pcm_24000")) for _ in range(count)
    ]
    for ws in sockets:
        ws.send(json.dumps(BOS))
    return sockets


def _speak(ws: ClientConnection, text: str) -> tuple[float, float]:
    """Send ``text`` with a flush and read its audio: (time of the first audio, of the last)."""
    ws.send(json.dumps({"text": text, "flush": True}))
    expected = BYTES_PER_CHAR * len(text.strip())
    received, first = 0, 0.0
    while received < expected:
        message = json.loads(ws.recv(timeout=30))
        assert message.get("audio"), message
        received += len(base64.b64decode(message["audio"]))
        first = first or time.monotonic()
    assert received == expected
    return first, time.monotonic()


def test_idle_sockets_hold_no_slot(server: Server) -> None:
    wait_for(lambda: _idle(server) == 1)
    with ExitStack() as stack:
        sockets = _open(stack, server, 3)  # more open sockets than slots: none waits
        wait_for(lambda: _status(server)["sessions"] == 3)
        assert _idle(server) == 1 and _status(server)["queued"] == 0
        for ws in sockets:  # each turn gets the slot and gives it back
            _speak(ws, "Hi there.")
            wait_for(lambda: _idle(server) == 1)
        assert _status(server)["sessions"] == 3  # the sockets stay open between turns


def test_turns_of_several_sockets_queue_in_arrival_order(server: Server) -> None:
    wait_for(lambda: _idle(server) == 1)
    times: dict[str, tuple[float, float]] = {}
    with ExitStack() as stack:
        sockets = dict(zip("abc", _open(stack, server, 3), strict=True))
        wait_for(lambda: _status(server)["sessions"] == 3)

        def turn(name: str) -> None:
            times[name] = _speak(sockets[name], TURN)

        threads = {name: threading.Thread(target=turn, args=(name,)) for name in "abc"}
        threads["a"].start()
        wait_for(lambda: _idle(server) == 0)
        for name, queued in (("b", 1), ("c", 2)):
            threads[name].start()
            wait_for(lambda q=queued: _status(server)["queued"] == q)  # type: ignore[misc]
        for thread in threads.values():
            thread.join(30)
    assert set(times) == {"a", "b", "c"}
    assert times["a"][1] <= times["b"][0] and times["b"][1] <= times["c"][0]
    wait_for(lambda: _idle(server) == 1)


def test_max_sessions_counts_http_requests_too(server: Server) -> None:
    def post() -> httpx.Response:
        return httpx.post(
            f"{server.http_url}/v1/text-to-speech/{CLIP_VOICE}", params={"output_format": "pcm_24000"},
            json={"text": "Hi."}, headers={"xi-api-key": KEY}, timeout=30,
        )  # fmt: skip

    wait_for(lambda: _status(server)["sessions"] == 0)
    with ExitStack() as stack:
        _open(stack, server, 3)  # limits.max_sessions
        wait_for(lambda: _status(server)["sessions"] == 3)
        refused = post()
        assert refused.status_code == 429, refused.text
        assert refused.json()["detail"]["status"] == "too_many_concurrent_requests"
    wait_for(lambda: _status(server)["sessions"] == 0)
    assert post().status_code == 200
