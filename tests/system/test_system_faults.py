"""Faults under load: each is injected while clients stream through the broker, then the fleet
must heal with nothing lost.

The fleet: a broker and two balancers (``east``, ``west``) of two tone-backend workers with
eight slots each, a stall timeout of 1 s, a heartbeat every 0.5 s and a 1.5 s TTL at the broker.
During each fault twelve clients run sessions back to back (stream-input, multi-stream-input and
HTTP streams in turn). For every fault:

- no session is ``bad`` (hung, truncated or foreign audio reported as complete, or an error
  with no word and a normal close; see ``sessions.py``);
- a session that failed failed *because of* the fault, and knew within ``BOUND_S`` of it
  (or of its own start, if it started later): an error message and a non-1000 close, an
  aborted HTTP body, or a refused connection while the broker was down;
- sessions untouched by it finished normally, with exactly their own audio;
- the fleet heals (recovery times are measured and printed) and ends at rest: every slot free
  at both balancers and at the broker, and no process outlives the fleet.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from fleet import CLIENT_KEY, Fleet, eventually, two_balancers
from load import BackgroundLoad
from sessions import Outcome
from tones import ToneReader

pytestmark = pytest.mark.timeout(300)

MS_PER_CHAR = 20.0
BOUND_S = 2.0
"""How soon after a fault (or after its own start) an affected client must know."""
CLIENTS = 12
STALL_S = 1.0
BALANCER = {"workers": 2, "slots": 8, "tone_ms_per_char": MS_PER_CHAR, "stall_timeout_s": STALL_S}
RECOVERY: list[tuple[str, str, float]] = []


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    try:
        with two_balancers(tmp_path_factory.mktemp("faults"), **BALANCER) as fleet:
            yield fleet
    finally:
        width = max((len(f) + len(w) for f, w, _ in RECOVERY), default=0) + 3
        print("\nrecovery times:")
        for fault, what, seconds in RECOVERY:
            print(f"  {f'{fault}: {what}':<{width}} {seconds:6.2f} s")


def start(fleet: Fleet, name: str) -> None:
    fleet.start_balancer(name, **BALANCER)


def load(fleet: Fleet, first_index: int) -> BackgroundLoad:
    return BackgroundLoad(
        fleet.broker.url, CLIENT_KEY, CLIENTS, ToneReader(MS_PER_CHAR), first_index
    )


def measure(fault: str, what: str, seconds: float) -> None:
    RECOVERY.append((fault, what, seconds))


def judge(
    outcomes: list[Outcome], fault_at: float, fault_end: float | None = None,
    expect_survivors: bool = True, detect_s: float = 0.0,
) -> None:  # fmt: skip
    """The rules of the module docstring, for a fault that began at ``fault_at`` (and lasted
    until ``fault_end``). ``expect_survivors=False``: every session in flight goes through the
    faulty part (the broker), so only one whose last bytes had already arrived can finish (and
    ``ok`` still means its audio was exactly its own). ``detect_s``: how long the fault
    takes to be detectable at all (a stall is one after ``STALL_S`` of silence); the bound
    counts from then."""
    fault_end = fault_end or fault_at
    bad = [o for o in outcomes if o.status == "bad"]
    assert not bad, f"{len(bad)} sessions went wrong, e.g. {bad[:3]}"
    errors = [o for o in outcomes if o.status == "error"]
    unrelated = [o for o in errors if o.started > fault_end + BOUND_S or o.ended < fault_at]
    assert not unrelated, f"sessions failed away from the fault: {unrelated[:3]}"
    late = [o for o in errors if o.ended - max(o.started, fault_at) > detect_s + BOUND_S]
    assert not late, f"sessions learnt of the fault too late: {late[:3]}"
    spanning = [o for o in outcomes if o.status == "ok" and o.started < fault_at < o.ended]
    assert spanning or not expect_survivors, "no session in flight at the fault finished normally"
    after = [o for o in outcomes if o.status == "ok" and o.started > fault_end + BOUND_S]
    assert after, (
        f"no session was served after the fault: {len(outcomes)} sessions, {outcomes[-3:]}"
    )
    print(f"\n{len(outcomes)} sessions: {len(errors)} failed with the fault, "
          f"{sum(o.status == 'ok' for o in outcomes)} ok, {len(spanning)} of them across it")  # fmt: skip


def serve_on(after: float) -> None:
    """Keep the load running until sessions that start well after the fault have finished."""
    time.sleep(max(after + BOUND_S + 3.0 - time.monotonic(), 0.0))


def back_at_rest(fleet: Fleet, fault: str, since: float) -> None:
    eventually(fleet.at_rest, "every balancer healthy with every slot free", 30)
    measure(fault, "fleet at rest, all slots free, after load stopped", time.monotonic() - since)


def test_sigkill_a_worker(fleet: Fleet) -> None:
    with load(fleet, 100_000) as traffic:
        time.sleep(2.0)
        victim = fleet.worker_pids("east")[0]
        fault_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        measure("worker SIGKILL", "worker respawned and ready", eventually(
            lambda: fleet.idle("east")[1] == 16 and victim not in fleet.worker_pids("east"),
            "the worker respawned", 30,
        ))  # fmt: skip
        serve_on(fault_at)
    judge(traffic.outcomes, fault_at)
    back_at_rest(fleet, "worker SIGKILL", time.monotonic())


def test_sigstop_a_worker_is_found_stalled_and_replaced(fleet: Fleet) -> None:
    with load(fleet, 200_000) as traffic:
        time.sleep(2.0)
        victim = fleet.worker_pids("west")[0]
        fault_at = time.monotonic()
        os.kill(victim, signal.SIGSTOP)
        try:
            measure("worker SIGSTOP", "stalled worker replaced", eventually(
                lambda: victim not in fleet.worker_pids("west") and fleet.idle("west")[1] == 16,
                "the stalled worker replaced", 30,
            ))  # fmt: skip
        finally:
            if fleet_has(victim):
                os.kill(victim, signal.SIGCONT)
        serve_on(fault_at + STALL_S)
    judge(traffic.outcomes, fault_at, detect_s=STALL_S)
    back_at_rest(fleet, "worker SIGSTOP", time.monotonic())


def fleet_has(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigkill_a_balancer_then_restart_it(fleet: Fleet) -> None:
    workers = fleet.worker_pids("east")
    with load(fleet, 300_000) as traffic:
        time.sleep(2.0)
        fault_at = time.monotonic()
        fleet.balancers["east"].process.kill()
        fleet.balancers["east"].process.wait(10)
        measure("balancer SIGKILL", "out of rotation at the broker", eventually(
            lambda: "east" not in fleet.healthy(), "east out of rotation", 10,
        ))  # fmt: skip
        measure("balancer SIGKILL", "its workers exited", eventually(
            lambda: not any(fleet_has(pid) for pid in workers), "east's workers to exit", 10,
        ))  # fmt: skip
        time.sleep(1.0)
        restarted = time.monotonic()
        start(fleet, "east")
        measure("balancer SIGKILL", "restarted balancer back in rotation", eventually(
            lambda: "east" in fleet.healthy(), "east back in rotation", 60,
        ))  # fmt: skip
        serve_on(fault_at)
    judge(traffic.outcomes, fault_at)
    assert restarted - fault_at < 30
    back_at_rest(fleet, "balancer SIGKILL", time.monotonic())


def test_sigkill_the_broker_then_restart_it(fleet: Fleet) -> None:
    with load(fleet, 400_000) as traffic:
        time.sleep(2.0)
        fault_at = time.monotonic()
        fleet.broker.stop(signal.SIGKILL)
        time.sleep(1.0)
        fleet.broker.start()
        back = time.monotonic()
        measure("broker SIGKILL", "both balancers registered again", eventually(
            lambda: fleet.healthy() == {"east", "west"}, "balancers to re-register", 30,
        ))  # fmt: skip
        serve_on(back)
    judge(traffic.outcomes, fault_at, back, expect_survivors=False)
    back_at_rest(fleet, "broker SIGKILL", time.monotonic())


def test_a_balancer_slow_to_accept_is_routed_around(fleet: Fleet) -> None:
    """SIGSTOP the balancer process itself for 3 s: its listening socket still completes TCP
    handshakes (the kernel's backlog) but nothing answers. The broker's connect timeout and
    the heartbeat TTL take it out of rotation; after SIGCONT it is back."""
    east = fleet.balancers["east"].process.pid
    with load(fleet, 500_000) as traffic:
        time.sleep(2.0)
        fault_at = time.monotonic()
        os.kill(east, signal.SIGSTOP)
        try:
            measure("balancer SIGSTOP", "out of rotation at the broker", eventually(
                lambda: "east" not in fleet.healthy(), "east out of rotation", 10,
            ))  # fmt: skip
            time.sleep(3.0)
        finally:
            os.kill(east, signal.SIGCONT)
        fault_end = time.monotonic()
        measure("balancer SIGSTOP", "back in rotation after SIGCONT", eventually(
            lambda: "east" in fleet.healthy(), "east back in rotation", 30,
        ))  # fmt: skip
        serve_on(fault_end)
    outcomes = traffic.outcomes
    bad = [o for o in outcomes if o.status == "bad"]
    assert not bad, bad[:3]
    # Streams on east froze with it: they may finish late or fail, but fail they must say so.
    served_after = [
        o for o in outcomes if o.status == "ok" and fault_at + 2 < o.started < fault_end
    ]
    assert served_after, "nothing was served by the other balancer while east was stopped"
    back_at_rest(fleet, "balancer SIGSTOP", time.monotonic())


def test_full_queues_refuse_at_once_and_recover(fleet: Fleet) -> None:
    """64 clients back to back on 32 slots and no queue: the excess is refused (busy) at once,
    nothing waits or fails, and the fleet is at rest right after."""
    with BackgroundLoad(
        fleet.broker.url, CLIENT_KEY, 64, ToneReader(MS_PER_CHAR), 600_000
    ) as flood:  # fmt: skip
        time.sleep(4.0)
    stopped = time.monotonic()
    outcomes = flood.outcomes
    refused = [o for o in outcomes if o.status == "refused"]
    assert refused, "64 clients on 32 slots were never refused"
    assert not [o for o in outcomes if o.status in ("bad", "error")], outcomes
    slowest = max(o.ended - o.started for o in refused)
    measure("queues full", "slowest refusal", slowest)
    assert slowest < BOUND_S
    assert sum(o.status == "ok" for o in outcomes) >= 32
    back_at_rest(fleet, "queues full", stopped)


def test_a_full_queue_refuses_the_rest_and_times_out_the_waiting(fleet: Fleet) -> None:
    """Straight at a balancer with 2 slots and a queue of 4 (2 s timeout), 16 clients back to
    back: a session beyond the queue is refused with 1013 at once, one left waiting too long is
    refused with 1013 when its wait times out, the others are served; the queue and the slots
    are empty afterwards."""
    queued = fleet.start_standalone("queued", workers=1, slots=2, max_queue=4)
    try:
        base = queued.http_url
        with BackgroundLoad(base, CLIENT_KEY, 16, ToneReader(MS_PER_CHAR), 900_000) as flood:
            time.sleep(5.0)
        outcomes = flood.outcomes
        refused = [o for o in outcomes if o.status == "refused"]
        assert refused and sum(o.status == "ok" for o in outcomes) >= 4
        assert not [o for o in outcomes if o.status in ("bad", "error")], outcomes
        slowest = max(o.ended - o.started for o in refused)
        measure("queue full", "slowest refusal (queue timeout 2 s)", slowest)
        assert slowest < 2.0 + BOUND_S
        eventually(
            lambda: fleet.idle("queued")[0] == 2 and queued.get("/workers").json()["queued"] == 0,
            "the slots free and the queue empty", 10,
        )  # fmt: skip
    finally:
        fleet.remove("queued")
