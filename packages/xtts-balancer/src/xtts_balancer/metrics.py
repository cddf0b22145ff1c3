"""Prometheus metrics of one balancer, in their own registry (so several apps can share a process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
_RTF_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)


class Metrics:
    """The balancer's metrics; ``registry`` is what ``GET /metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions_active = Gauge(
            "xtts_sessions_active", "Open speech sessions (websocket and HTTP)", registry=r
        )
        self.sessions_total = Counter(
            "xtts_sessions", "Speech sessions accepted (websocket and HTTP)", registry=r
        )
        self.queue_length = Gauge("xtts_queue_length", "Sessions waiting for a slot", registry=r)
        self.queue_wait = Histogram(
            "xtts_queue_wait_seconds", "Time a session waited for a slot", registry=r,
            buckets=_LATENCY_BUCKETS,
        )  # fmt: skip
        self.time_to_first_audio = Histogram(
            "xtts_time_to_first_audio_seconds",
            "From a segment's dispatch to its first audio message", registry=r,
            buckets=_LATENCY_BUCKETS,
        )  # fmt: skip
        self.real_time_factor = Histogram(
            "xtts_real_time_factor", "Compute time / audio duration per segment", registry=r,
            buckets=_RTF_BUCKETS,
        )  # fmt: skip
        self.worker_restarts = Counter(
            "xtts_worker_restarts", "Worker processes restarted after dying", registry=r
        )
        self.workers_ready = Gauge("xtts_workers_ready", "Warm workers", registry=r)
        self.worker_realtime_streams = Gauge(
            "xtts_worker_realtime_streams",
            "Streams a worker measured it can keep faster than real time", ["worker"], registry=r,
        )  # fmt: skip
        self.worker_step_seconds = Gauge(
            "xtts_worker_step_seconds", "Mean decode step time of a worker's latest batch size",
            ["worker"], registry=r,
        )  # fmt: skip
        self.characters = Counter(
            "xtts_characters", "Characters of text spoken (each finished segment's)", registry=r
        )
        self.errors = Counter(
            "xtts_errors", "Sessions ended with an error, by error code", ["error"], registry=r
        )
        self.slots = Gauge(
            "xtts_slots", "Stream slots of the warm workers (what the balancer offers)", registry=r
        )
        self.slots_free = Gauge(
            "xtts_slots_free", "Stream slots free now (an autoscaler's signal)", registry=r
        )

    def characters_spoken(self) -> int:
        """Characters spoken since the process started (``xtts_characters_total``)."""
        return int(self.registry.get_sample_value("xtts_characters_total") or 0)

    def watch_capacity(self, capacity: Callable[[], tuple[int, int]]) -> None:
        """Read ``xtts_slots_free`` and ``xtts_slots`` from ``capacity()`` (``(idle,
        capacity)``, as the broker is told) at each scrape, so they never lag the pool."""
        self.slots_free.set_function(lambda: capacity()[0])
        self.slots.set_function(lambda: capacity()[1])
