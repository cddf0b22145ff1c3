"""Several broker replicas, every balancer registered with every one of them.

Two brokers on one port at 127.0.0.2 and 127.0.0.3 stand for the pods behind a headless
Service; ``north`` and ``south`` find them by resolving one name (``cluster.resolve_brokers``
with :mod:`broker_dns` as the resolver, looked up again every 0.3 s), ``static`` is given both
URLs as a list. Each balancer has one worker with one slot, so three streams open together
through one broker must take all three balancers: that is how the test knows a client through
either broker reaches every balancer. Then the faults a cluster sees: a broker SIGKILLed and
restarted at its address is repopulated within one heartbeat (each balancer's next heartbeat
there is answered 404 and it registers again); a replica that appears in the name is
registered with, one that leaves it is deregistered from; a balancer SIGKILLed leaves the
rotation of every broker within the TTL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from broker_dns import write_table
from fleet import CLIENT_KEY, HEARTBEAT_S, TTL_S, BrokerProcess, Fleet, eventually
from sessions import Gate, run_session
from tones import ToneReader

pytestmark = pytest.mark.timeout(300)

NAME = "brokers.fleet.test"
RESOLVE_S = 0.3
MS_PER_CHAR = 20.0
BALANCERS = ("north", "south", "static")
#: Scheduling slack on a small, shared CI machine, on top of each documented bound.
SLACK_S = 1.5


@pytest.fixture
def brokers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Fleet, list[BrokerProcess]]]:
    """The fleet (its own broker is the first replica) and the replicas, ``a`` and ``b``, with
    all three balancers registered and idle at both."""
    table = tmp_path / "dns.json"
    monkeypatch.setenv("FLEET_DNS_FILE", str(table))
    # The balancers import broker_dns (tests/balancer) as their resolver.
    helpers = str(Path(__file__).resolve().parent.parent / "balancer")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [helpers, os.environ.get("PYTHONPATH")]))
    )
    voices = tmp_path / "voices"
    voices.mkdir()
    fleet = Fleet(tmp_path, voices)
    port = fleet.broker.port
    replicas = [
        BrokerProcess(_folder(tmp_path, name), host=host, port=port)
        for name, host in (("a", "127.0.0.2"), ("b", "127.0.0.3"))
    ]
    fleet.broker = replicas[0]
    write_table(table, {NAME: [r.host for r in replicas]})
    resolved = {
        "broker_urls": [f"http://{NAME}:{port}"],
        "resolve_brokers": True,
        "resolve_interval_s": RESOLVE_S,
        "broker_resolver": "broker_dns:resolve",
    }
    listed = {"broker_urls": [r.url for r in replicas]}
    try:
        for replica in replicas:
            replica.start()
        for name in BALANCERS:
            cluster = listed if name == "static" else resolved
            fleet.start_balancer(
                name, workers=1, slots=1, tone_ms_per_char=MS_PER_CHAR, cluster=cluster
            )
        for replica in replicas:
            eventually(
                lambda r=replica: fleet.healthy(r) == set(BALANCERS),
                f"{replica.url} to list all",
                180,
            )
        eventually(fleet.at_rest, "the balancers idle", 30)
        yield fleet, replicas
    finally:
        fleet.seen_pids.update(r.process.pid for r in replicas if r.process is not None)
        fleet.stop()
        for replica in replicas[1:]:
            replica.stop()
    assert fleet.survivors() == [], "processes outlived the fleet"
    assert fleet.tracebacks() == [], "tracebacks in the fleet's logs"


def _folder(parent: Path, name: str) -> Path:
    folder = parent / f"broker-{name}"
    folder.mkdir()
    return folder


async def _together(base: str, count: int, first_index: int) -> list[str]:
    """``count`` stream-input sessions through ``base``, all open before any speaks."""
    gate = Gate(count, timeout=20)
    reader = ToneReader(MS_PER_CHAR)
    async with httpx.AsyncClient(timeout=30) as http:
        outcomes = await asyncio.gather(*(
            run_session("ws", base, CLIENT_KEY, first_index + i, reader, gate, http, 60)
            for i in range(count)
        ))  # fmt: skip
    return [f"{o.status} {o.detail}".strip() for o in outcomes]


def test_every_balancer_serves_through_every_broker_replica(
    brokers: tuple[Fleet, list[BrokerProcess]], tmp_path: Path
) -> None:
    fleet, (a, b) = brokers

    # Through either broker, three streams at once take the three single-slot balancers.
    for index, broker in enumerate((a, b)):
        before = fleet.sessions_served()
        statuses = asyncio.run(_together(broker.url, len(BALANCERS), 100 * index))
        assert statuses == ["ok"] * len(BALANCERS), (broker.url, statuses, fleet.logs())
        after = fleet.sessions_served()
        assert {name: after[name] - before[name] for name in BALANCERS} == dict.fromkeys(
            BALANCERS, 1.0
        ), broker.url
        eventually(fleet.at_rest, "the balancers idle again", 30)

    # A broker SIGKILLed and restarted at its address knows everyone again within a heartbeat.
    b.stop(signal.SIGKILL)
    b.start()
    took = eventually(lambda: fleet.healthy(b) == set(BALANCERS), "b repopulated", 30)
    print(f"\nrestarted broker repopulated in {took:.2f} s (heartbeat {HEARTBEAT_S} s)")
    assert took <= HEARTBEAT_S + SLACK_S, fleet.logs()

    # A replica that appears under the name gets the balancers that resolve it; one that leaves
    # the name is deregistered from (it still runs: a pod scaled away or being replaced).
    c = BrokerProcess(_folder(tmp_path, "c"), host="127.0.0.4", port=a.port)
    c.start()
    try:
        write_table(tmp_path / "dns.json", {NAME: [a.host, c.host]})
        eventually(lambda: set(fleet.listing(c)) == {"north", "south"}, "c to learn of them", 20)
        eventually(lambda: set(fleet.listing(b)) == {"static"}, "b to be left", 20)
        assert fleet.healthy(a) == set(BALANCERS)

        # A balancer SIGKILLed leaves the rotation of every broker it was registered with
        # within the TTL.
        fleet.note_processes()
        fleet.balancers["south"].process.kill()
        killed = time.monotonic()
        eventually(
            lambda: "south" not in fleet.healthy(a) | fleet.healthy(c), "south out of rotation", 20
        )
        took = time.monotonic() - killed
        print(f"killed balancer out of rotation in {took:.2f} s (TTL {TTL_S} s)")
        assert took <= TTL_S + SLACK_S
        assert fleet.healthy(a) == {"north", "static"} and fleet.healthy(c) == {"north"}
    finally:
        if c.process is not None:
            fleet.seen_pids.add(c.process.pid)
        c.stop()
