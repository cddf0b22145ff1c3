"""Prometheus metrics of one broker, in their own registry (so several brokers fit one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from xtts_broker.registry import Health, Registry

__all__ = ["BrokerMetrics"]


class BrokerMetrics:
    """The broker's counters, gauges and histograms; :meth:`render` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sessions = Counter(
            "xtts_broker_sessions_routed",
            "Streams connected to a balancer, by balancer.",
            ["balancer"],
            registry=self.registry,
        )
        self.failovers = Counter(
            "xtts_broker_failovers",
            "Attempts abandoned for the next balancer before any audio reached the client.",
            ["reason"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "xtts_broker_rejected_streams",
            "Client streams closed by the broker itself, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.routing_seconds = Histogram(
            "xtts_broker_routing_seconds",
            "From accepting a client to its balancer accepting the stream (probes and retries).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.active = Gauge(
            "xtts_broker_active_streams", "Client streams open now.", registry=self.registry
        )
        self.balancers = Gauge(
            "xtts_broker_balancers",
            "Registered balancers, by health.",
            ["health"],
            registry=self.registry,
        )
        self.free_slots = Gauge(
            "xtts_broker_free_slots",
            "Slots this broker can route to now: healthy balancers' reported idle slots less its "
            "own reservations (each broker sees only its own).",
            registry=self.registry,
        )

    def render(self, registry: Registry) -> bytes:
        """The exposition text, with the registry gauges brought up to date first."""
        counts = dict.fromkeys(Health, 0)
        for entry in registry.entries():
            counts[registry.health(entry)] += 1
        for health, count in counts.items():
            self.balancers.labels(health.value).set(count)
        self.free_slots.set(sum(entry.free for entry in registry.routable()))
        return generate_latest(self.registry)
