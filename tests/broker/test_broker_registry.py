"""The registry: health from heartbeats, removal after grace, reservations (fake clock)."""

from __future__ import annotations

from xtts_broker.registry import Health, Registry
from xtts_broker.settings import ClusterSection
from xtts_core.cluster import BalancerHeartbeat, BalancerRegistration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock) -> Registry:
    cluster = ClusterSection(
        secret="0123456789abcdef",
        heartbeat_interval_s=5,
        heartbeat_ttl_s=15,
        removal_grace_s=60,
        capacity_fresh_s=6,
    )
    return Registry(cluster, clock=clock)


def reg(balancer_id: str, capacity: int = 2, idle: int | None = None) -> BalancerRegistration:
    return BalancerRegistration(
        id=balancer_id, host="10.0.0.1", port=8000, capacity=capacity, idle=idle
    )


def test_health_follows_heartbeats_and_removal_waits_for_the_grace() -> None:
    clock = Clock()
    registry = make(clock)
    entry = registry.register(reg("b1"))
    assert registry.health(entry) is Health.HEALTHY
    clock.now += 16  # missed the TTL
    assert registry.health(entry) is Health.UNHEALTHY
    assert registry.routable() == []
    assert registry.heartbeat(BalancerHeartbeat(id="b1", idle=1, capacity=2))
    assert registry.health(entry) is Health.HEALTHY and entry.idle == 1
    clock.now += 61  # past the grace
    assert registry.entries() == []
    assert registry.prune() == []
    assert not registry.heartbeat(BalancerHeartbeat(id="b1", idle=1, capacity=2))


def test_a_failure_marks_down_until_the_next_heartbeat() -> None:
    clock = Clock()
    registry = make(clock)
    entry = registry.register(reg("b1"))
    registry.mark_down("b1", "probe failed")
    assert registry.health(entry) is Health.UNHEALTHY
    assert entry.down_reason == "probe failed"
    registry.heartbeat(BalancerHeartbeat(id="b1", idle=2, capacity=2))
    assert registry.health(entry) is Health.HEALTHY and entry.down_reason is None


def test_registering_again_keeps_the_order_and_deregistering_removes() -> None:
    registry = make(Clock())
    registry.register(reg("a"))
    registry.register(reg("b"))
    registry.register(reg("a", capacity=8))
    assert [(e.id, e.order, e.capacity) for e in registry.entries()] == [("a", 0, 8), ("b", 1, 2)]
    assert registry.deregister("a")
    assert not registry.deregister("a")
    assert [e.id for e in registry.entries()] == ["b"]


def test_reservations_count_until_a_report_includes_them() -> None:
    clock = Clock()
    registry = make(clock)
    entry = registry.register(reg("b1", capacity=3))
    first, second = registry.reserve("b1"), registry.reserve("b1")
    assert entry.free == 1  # 3 idle minus 2 streams being routed
    clock.now += 1
    registry.mark_connected(first)
    assert entry.free == 1  # connected after the last report: still not in it
    clock.now += 1
    registry.heartbeat(BalancerHeartbeat(id="b1", idle=2, capacity=3))  # counts `first`
    assert entry.free == 1  # 2 idle minus `second`, still connecting
    registry.release(second)
    assert entry.free == 2
    registry.release(first)
    assert entry.free == 2  # the balancer reports the slot itself, next heartbeat


def test_stale_capacity_and_probe_results() -> None:
    clock = Clock()
    registry = make(clock)
    entry = registry.register(reg("b1", capacity=2, idle=0))
    assert registry.stale(registry.routable()) == []
    clock.now += 7
    assert registry.stale(registry.routable()) == [entry]
    registry.record_probe("b1", 2, measured_at=clock.now)
    assert entry.idle == 2 and registry.stale(registry.routable()) == []
    registry.record_probe("b1", 0, measured_at=clock.now - 30)  # older than what we know
    assert entry.idle == 2
