"""Slots, the FIFO queue, disconnects and worker death against the real server (two workers);
real-time capacity reports, capacity-aware admission and KV pool sizing (units and the server)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from balancer_server import (
    KEY,
    MAX_SESSIONS_PER_KEY,
    OTHER_KEY,
    Server,
    base_config,
    converse,
    read_until_closed,
    start_server,
)
from websockets.sync.client import ClientConnection

from xtts_balancer.backends.base import DEFAULT_VOICE_ID
from xtts_balancer.backends.tone import ToneBackend, ToneOptions
from xtts_balancer.pool import SlotPool
from xtts_balancer.supervisor import Supervisor, WorkerHandle
from xtts_balancer.worker import main as worker_main
from xtts_balancer.worker.ipc import Job, Load, WorkerConfig

BOS = {"text": " "}
EOS = {"text": ""}


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server(
    model_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """Two workers whose sockets hold their slot for the whole session
    (``queue.slot_lease: session``), so an open socket is a held slot; the per-utterance lease
    is tested in test_session_leases.py."""
    model_dir, voices = model_files
    config = base_config(model_dir, voices)
    config["service"]["instances"] = 2
    config["queue"]["slot_lease"] = "session"
    srv = start_server(tmp_path_factory.mktemp("capacity"), config)
    try:
        srv.wait_ready(workers=2)
        yield srv
    finally:
        srv.stop()


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
        assert reply.error is not None and reply.error["error"] == "system_busy"
        assert "queue is full" in reply.error["message"]
        timed_out = read_until_closed(queued, timeout=10)  # queue_timeout_s is 1.5
        assert timed_out.close_code == 1013
        assert timed_out.error is not None and "within 1.5 seconds" in timed_out.error["message"]
        assert timed_out.error["error"] == "too_many_concurrent_requests"
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
    assert reply.error is not None and reply.error["error"] == "too_many_concurrent_requests"
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


# --- real-time capacity: reports, admission, KV pool sizing -----------------------------------------


def test_workers_report_their_realtime_capacity(server: Server) -> None:
    """The warm-up already times decode steps, so every ready worker reports within moments."""
    wait_for(lambda: all(w["realtime_streams"] is not None for w in server.workers()), 60)
    for worker in server.workers():
        assert worker["slots"] == 1  # capacity_aware is off: the fixed slots
        assert worker["realtime_streams"] >= 1 and worker["step_ms"] > 0
    metrics = server.get("/metrics").text
    assert 'xtts_worker_realtime_streams{worker="0"}' in metrics
    assert 'xtts_worker_step_seconds{worker="1"}' in metrics


def ready_workers(count: int) -> list[WorkerHandle]:
    config = WorkerConfig("w", Path(), None, "fp32", None, None, Path(), "en", 4, None, "Hi.", 20)
    workers = [WorkerHandle(i, config) for i in range(count)]
    for worker in workers:
        worker.state, worker.incarnation = "ready", 1
    return workers


def test_capacity_aware_pool_leases_only_realtime_slots() -> None:
    async def scenario() -> None:
        (worker,) = ready_workers(1)
        pool = SlotPool([worker], 4, max_queue=4, queue_timeout_s=5, capacity_aware=True)
        assert pool.free_slots == 4  # no report yet: the fixed slots
        worker.realtime_streams = 1
        assert (pool.free_slots, pool.capacity) == (1, 1)
        first = await pool.acquire()
        waiter = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0)
        assert pool.queued == 1  # one real-time stream is all it can take: the next one waits
        worker.realtime_streams = 3  # it measured more headroom
        pool.dispatch()
        second = await waiter
        assert worker.busy == 2 and pool.free_slots == 1
        worker.realtime_streams = 1  # slower again: nobody is evicted, nobody new is admitted
        assert pool.free_slots == 0
        worker.realtime_streams = 99
        assert pool.slots_of(worker) == 4  # never above the configured slots
        for lease in (first, second):
            pool.release(lease)

    asyncio.run(scenario())


def test_fixed_slot_pool_ignores_the_reports() -> None:
    (worker,) = ready_workers(1)
    worker.realtime_streams = 1
    pool = SlotPool([worker], 4, max_queue=4, queue_timeout_s=5)
    assert (pool.free_slots, pool.capacity, pool.slots_of(worker)) == (4, 4, 4)


def test_supervisor_keeps_each_workers_load_until_it_restarts() -> None:
    config = WorkerConfig("w", None, None, "fp32", None, None, Path(), "en", 2, None, "Hi.", 20)
    seen: list[int] = []
    supervisor = Supervisor(
        [config], startup_timeout_s=1, restart_backoff_s=1, max_restarts=0, stop_timeout_s=1,
        on_change=lambda: None, on_restart=lambda: None, on_load=lambda h: seen.append(h.index),
    )  # fmt: skip
    (handle,) = supervisor.workers
    supervisor._on_message(handle, 0, Load(3, 0.012))
    assert (handle.realtime_streams, handle.step_s, seen) == (3, 0.012, [0])
    supervisor._on_message(handle, 5, Load(1, 0.5))  # an old incarnation's last words
    assert handle.realtime_streams == 3 and seen == [0]


class _Pipe:
    def __init__(self) -> None:
        self.sent: list[object] = []

    def send(self, message: object) -> None:
        self.sent.append(message)


def test_the_worker_sends_a_load_only_when_it_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [None, Load(2, 0.01), Load(2, 0.01), Load(3, 0.02)]  # then Load(3, 0.02) forever
    asked_out = threading.Event()

    class Measuring(ToneBackend):
        def realtime_load(self) -> Load | None:
            if len(answers) > 1:
                return answers.pop(0)
            asked_out.set()
            return answers[0]

    monkeypatch.setattr(worker_main, "LOAD_INTERVAL_S", 0.01)
    config = WorkerConfig("w", None, None, "fp32", None, None, Path(), "en", 1, None, "Hi.", 20)
    pipe = _Pipe()
    runner = worker_main._JobRunner(
        Measuring(config, ToneOptions()),
        worker_main._Sender(pipe),  # type: ignore[arg-type]
    )
    runner.start_reporting()
    assert asked_out.wait(5)
    runner.shutdown()
    assert pipe.sent == [Load(2, 0.01), Load(3, 0.02)]


def test_an_xtts_pool_that_does_not_fit_fails_the_start(
    model_files: tuple[Path, Path], tmp_path: Path
) -> None:
    from xtts_balancer.backends.xtts import XttsBackend

    model_dir, voices = model_files
    config = WorkerConfig(
        "w", model_dir, "cpu", "fp32", voices, None, tmp_path, "en", 3, None, "Hi.", 20,
        kv_pool_bytes=1 << 20,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"^workers.slots_per_worker: 3 do not fit: the KV pool "
                       r"of 3 streams needs .* GiB .* but the budget is 0.00 GiB: at most \d+ "
                       r"streams fit$"):  # fmt: skip
        XttsBackend.load(config)
    backend = XttsBackend.load(dataclasses.replace(config, kv_pool_bytes=None))
    try:
        assert backend.realtime_load() is None  # nothing timed yet
        job = Job(1, "Hello.", "en", DEFAULT_VOICE_ID, 1.0, 0, 6, 2, 4, False)
        assert sum(chunk.size for chunk in backend.submit(job)) > 0
        load = backend.realtime_load()
        assert load is not None and 1 <= load.realtime_streams <= 3 and load.step_s > 0
    finally:
        backend.close()


def test_a_capacity_aware_worker_admits_only_its_realtime_streams(
    model_files: tuple[Path, Path], tmp_path: Path
) -> None:
    """End to end: a worker with two slots whose steps all miss the (absurdly strict) real-time
    budget reports one real-time stream, so the second session waits until the first ends."""
    model_dir, voices = model_files
    config = base_config(
        model_dir, voices, queue={"max_queue": 2, "queue_timeout_s": 30, "slot_lease": "session"}
    )
    config["workers"].update(slots_per_worker=2, capacity_aware=True, realtime_safety=1e-6)
    srv = start_server(tmp_path, config)
    try:
        srv.wait_ready()
        wait_for(lambda: srv.workers()[0]["realtime_streams"] == 1, 30)
        assert srv.workers()[0]["slots"] == 1 and idle(srv) == 1
        with ExitStack() as stack:
            (first,) = hold(stack, srv, 1)
            wait_for(lambda: idle(srv) == 0)
            (second,) = hold(stack, srv, 1, OTHER_KEY)
            wait_for(lambda: srv.get("/workers").json()["queued"] == 1)
            assert srv.workers()[0]["busy_slots"] == 1
            first.close()
            wait_for(lambda: srv.get("/workers").json()["queued"] == 0)
            assert srv.workers()[0]["busy_slots"] == 1  # the waiting session got the slot
            reply = converse(second, {"text": "Hello. "}, EOS)
            assert reply.close_code == 1000 and reply.messages[-1]["isFinal"] is True
    finally:
        srv.stop()
