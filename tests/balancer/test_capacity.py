"""Slots, the FIFO queue, disconnects and worker death against the real server (two workers)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from contextlib import ExitStack

from balancer_server import (
    KEY,
    MAX_SESSIONS_PER_KEY,
    OTHER_KEY,
    Server,
    converse,
    read_until_closed,
)
from websockets.sync.client import ClientConnection

BOS = {"text": " "}
EOS = {"text": ""}


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def idle(server: Server) -> int:
    count: int = server.get("/workers/idle").json()["idle_workers"]
    return count


def hold(stack: ExitStack, server: Server, count: int, key: str = KEY) -> list[ClientConnection]:
    """``count`` sessions that sent their first message (so each holds or waits for a slot)."""
    sockets = [stack.enter_context(server.connect(key=key)) for _ in range(count)]
    for ws in sockets:
        ws.send(json.dumps(BOS))
    return sockets


def test_queue_full_and_queue_timeout_get_1013(server: Server) -> None:
    wait_for(lambda: idle(server) == 2)
    with ExitStack() as stack:
        hold(stack, server, 2)
        wait_for(lambda: idle(server) == 0)
        (queued,) = hold(stack, server, 1, OTHER_KEY)
        wait_for(lambda: server.get("/workers").json()["queued"] == 1)
        with server.connect(key=OTHER_KEY) as refused:  # max_queue is 1
            reply = converse(refused, BOS)
        assert reply.close_code == 1013
        assert reply.error is not None and reply.error["error"] == "server_busy"
        assert "queue is full" in reply.error["message"]
        timed_out = read_until_closed(queued, timeout=10)  # queue_timeout_s is 1.5
        assert timed_out.close_code == 1013
        assert timed_out.error is not None and "within 1.5 seconds" in timed_out.error["message"]
    wait_for(lambda: idle(server) == 2)


def test_a_queued_session_gets_the_first_freed_slot(server: Server) -> None:
    wait_for(lambda: idle(server) == 2)
    with ExitStack() as stack:
        holders = hold(stack, server, 2)
        wait_for(lambda: idle(server) == 0)
        (waiting,) = hold(stack, server, 1, OTHER_KEY)
        wait_for(lambda: server.get("/workers").json()["queued"] == 1)
        holders[0].close()
        reply = converse(waiting, {"text": "Hi. "}, EOS)
    assert reply.close_code == 1000 and reply.audio
    wait_for(lambda: idle(server) == 2)


def test_too_many_sessions_for_one_key(server: Server) -> None:
    wait_for(lambda: idle(server) == 2)
    with ExitStack() as stack:
        hold(stack, server, MAX_SESSIONS_PER_KEY, OTHER_KEY)
        wait_for(lambda: server.get("/workers").json()["sessions"] == MAX_SESSIONS_PER_KEY)
        with server.connect(key=OTHER_KEY) as ws:
            reply = converse(ws, BOS)
    assert reply.close_code == 1008
    assert reply.error is not None and reply.error["error"] == "too_many_sessions"
    wait_for(lambda: idle(server) == 2)


def test_disconnect_mid_generation_frees_the_slot_at_once(server: Server) -> None:
    wait_for(lambda: idle(server) == 2)
    with server.connect() as ws:
        ws.send(json.dumps(BOS))
        ws.send(json.dumps({"text": "One. Two. Three. Four. Five. Six. ", "flush": True}))
        assert json.loads(ws.recv(timeout=30))["audio"]
    wait_for(lambda: idle(server) == 2, timeout=2)


def test_worker_killed_mid_stream_fails_that_stream_and_comes_back(server: Server) -> None:
    wait_for(lambda: idle(server) == 2)
    with server.connect() as victim, server.connect() as bystander:
        victim.send(json.dumps(BOS))
        text = "One. Two. Three. Four. Five. Six. Seven. "
        victim.send(json.dumps({"text": text, "flush": True}))
        assert json.loads(victim.recv(timeout=30))["audio"]
        busy = [w for w in server.workers() if w["busy_slots"] == 1]
        assert len(busy) == 1
        bystander.send(json.dumps(BOS))  # the other worker serves another session meanwhile
        os.kill(busy[0]["pid"], signal.SIGKILL)
        reply = read_until_closed(victim, timeout=30)
        assert reply.close_code == 1011
        assert reply.error is not None and reply.error["error"] == "worker_failed"
        other = converse(bystander, {"text": "Still here. "}, EOS)
    assert other.close_code == 1000 and other.audio
    wait_for(lambda: all(w["state"] == "ready" for w in server.workers()), timeout=60)  # restarted
    restarted = server.workers()[busy[0]["index"]]
    assert restarted["restarts"] == 1 and restarted["pid"] != busy[0]["pid"]
    assert "xtts_worker_restarts_total 1.0" in server.get("/metrics").text


def test_a_hung_worker_is_killed_and_replaced(server: Server) -> None:
    wait_for(lambda: all(w["state"] == "ready" for w in server.workers()), timeout=60)
    with server.connect() as ws:
        ws.send(json.dumps(BOS))
        ws.send(json.dumps({"text": "One. Two. Three. Four. Five. Six. Seven. ", "flush": True}))
        assert json.loads(ws.recv(timeout=30))["audio"]
        (busy,) = [w for w in server.workers() if w["busy_slots"] == 1]
        os.kill(busy["pid"], signal.SIGSTOP)  # alive, but silent: stall_timeout_s is 5
        t0 = time.monotonic()
        reply = read_until_closed(ws, timeout=30)
    assert reply.close_code == 1011 and 4 < time.monotonic() - t0 < 20
    assert reply.error is not None and reply.error["error"] == "worker_failed"
    wait_for(lambda: server.workers()[busy["index"]]["state"] == "ready", timeout=60)
    assert server.workers()[busy["index"]]["pid"] != busy["pid"]


def test_http_endpoints(server: Server) -> None:
    assert server.get("/health").json() == {"status": "ok"}
    ready = server.get("/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert set(server.get("/workers/idle").json()) == {"idle_workers"}
    metrics = server.get("/metrics").text
    for name in (
        "xtts_sessions_total", "xtts_queue_length", "xtts_time_to_first_audio_seconds_bucket",
        "xtts_real_time_factor_bucket", "xtts_worker_restarts_total", 'xtts_errors_total{error=',
    ):  # fmt: skip
        assert name in metrics
