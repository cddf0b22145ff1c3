"""The broker's in-memory registry of balancers: health from heartbeats, capacity, reservations.

- A balancer is **unhealthy** (gets no new streams) after ``heartbeat_ttl_s`` without a heartbeat,
  or after a failed probe or connect, and **removed** only after ``removal_grace_s``; its next
  heartbeat brings it back, so one failed probe never drops a balancer for good.
- Free slots = the last reported idle count minus **reservations**: streams the broker routed to
  the balancer that the report cannot include yet (not connected yet, or connected after the
  report was measured). Choosing and reserving happen with no ``await`` in between, so
  concurrent clients on one event loop never take the same last slot.

What it does not do: I/O. Probing stale entries is :mod:`xtts_broker.router`'s job. The registry
is per broker process and rebuilt from registrations and heartbeats after a restart (a balancer
told "unknown id" by a heartbeat registers again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from xtts_broker.settings import ClusterSection
from xtts_broker.strategy import Candidate
from xtts_core.cluster import BalancerHeartbeat, BalancerRegistration

__all__ = ["BalancerEntry", "Health", "Registry", "Reservation"]

logger = logging.getLogger(__name__)


class Health(str, Enum):
    """Whether a balancer gets new streams."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@dataclass(eq=False)
class Reservation:
    """One stream the broker routed to a balancer, from the choice until the stream ends."""

    balancer_id: str
    created: float
    connected: float | None = None
    """When the balancer accepted the stream; ``None`` while connecting."""


@dataclass(eq=False)
class BalancerEntry:
    """A registered balancer and what the broker knows about it."""

    registration: BalancerRegistration
    order: int
    """Registration order (kept when the same id registers again, as in the original)."""
    registered_at: float
    last_seen: float
    """Last registration or heartbeat (liveness)."""
    idle: int
    capacity: int
    capacity_at: float
    """When ``idle`` was measured (heartbeat, registration or probe)."""
    down_reason: str | None = None
    """Why it is unhealthy although its heartbeats are recent (failed probe or connect)."""
    reservations: set[Reservation] = field(default_factory=set)
    voices_ready: bool = True
    """Whether it holds the fleet's voices; the broker's voice sync clears this on registration
    and sets it once the balancer has them (:mod:`xtts_broker.voice_sync`)."""

    @property
    def id(self) -> str:
        return self.registration.id

    def health(self, now: float, ttl_s: float) -> Health:
        """Healthy: a heartbeat within ``ttl_s`` and no failure since."""
        if self.down_reason is None and now - self.last_seen <= ttl_s:
            return Health.HEALTHY
        return Health.UNHEALTHY

    @property
    def pending(self) -> int:
        """Reservations the last idle count cannot include yet."""
        return sum(
            1 for r in self.reservations if r.connected is None or r.connected > self.capacity_at
        )

    @property
    def free(self) -> int:
        """Slots a new stream can take: reported idle minus pending reservations."""
        return max(0, self.idle - self.pending)


class Registry:
    """Balancers by id, in registration order; all times from ``clock`` (monotonic seconds)."""

    def __init__(
        self, cluster: ClusterSection, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._cluster = cluster
        self._clock = clock
        self._entries: dict[str, BalancerEntry] = {}
        self._next_order = 0

    def now(self) -> float:
        return self._clock()

    # --- balancer-driven changes ------------------------------------------------------------------

    def register(self, registration: BalancerRegistration) -> BalancerEntry:
        """Add a balancer, or update one that registers again (it keeps its order)."""
        now = self._clock()
        capacity = registration.total_capacity
        idle = capacity if registration.idle is None else registration.idle
        entry = self._entries.get(registration.id)
        if entry is None:
            entry = BalancerEntry(registration, self._next_order, now, now, idle, capacity, now)
            self._next_order += 1
            self._entries[registration.id] = entry
            logger.info(
                "registered balancer %s at %s (capacity %d, idle %d, version %s)",
                registration.id,
                registration.base_url,
                capacity,
                idle,
                registration.version,
            )
        else:
            entry.registration = registration
            entry.last_seen = entry.capacity_at = now
            entry.idle, entry.capacity, entry.down_reason = idle, capacity, None
            logger.info(
                "balancer %s registered again at %s", registration.id, registration.base_url
            )
        return entry

    def heartbeat(self, beat: BalancerHeartbeat) -> bool:
        """Record live capacity; ``False`` if the id is unknown (it must register again)."""
        entry = self._entries.get(beat.id)
        if entry is None:
            return False
        now = self._clock()
        if entry.health(now, self._cluster.heartbeat_ttl_s) is Health.UNHEALTHY:
            logger.info("balancer %s is back (heartbeat)", beat.id)
        entry.last_seen = entry.capacity_at = now
        entry.idle, entry.capacity, entry.down_reason = beat.idle, beat.capacity, None
        return True

    def deregister(self, balancer_id: str) -> bool:
        """Remove a balancer that is shutting down; ``False`` if it was not registered."""
        removed = self._entries.pop(balancer_id, None) is not None
        if removed:
            logger.info("balancer %s deregistered", balancer_id)
        return removed

    # --- broker-driven changes --------------------------------------------------------------------

    def mark_down(self, balancer_id: str, reason: str) -> None:
        """Take a balancer out of rotation until its next heartbeat (a probe or connect failed)."""
        entry = self._entries.get(balancer_id)
        if entry is not None and entry.down_reason is None:
            entry.down_reason = reason
            logger.warning(
                "balancer %s out of rotation until its next heartbeat: %s", balancer_id, reason
            )

    def record_probe(self, balancer_id: str, idle: int, measured_at: float) -> None:
        """Store a probed idle count measured no earlier than ``measured_at``."""
        entry = self._entries.get(balancer_id)
        if entry is not None and measured_at >= entry.capacity_at:
            entry.idle, entry.capacity_at = idle, measured_at
            entry.capacity = max(entry.capacity, idle)

    def reserve(self, balancer_id: str) -> Reservation:
        """Hold one slot of ``balancer_id`` for a stream being routed there."""
        reservation = Reservation(balancer_id, self._clock())
        entry = self._entries.get(balancer_id)
        if entry is not None:
            entry.reservations.add(reservation)
        return reservation

    def mark_connected(self, reservation: Reservation) -> None:
        """The balancer accepted the stream: reports measured after now include it."""
        reservation.connected = self._clock()

    def release(self, reservation: Reservation) -> None:
        """The stream ended or never started; the slot is the balancer's to report again."""
        entry = self._entries.get(reservation.balancer_id)
        if entry is not None:
            entry.reservations.discard(reservation)

    # --- queries ----------------------------------------------------------------------------------

    def prune(self) -> list[str]:
        """Remove balancers silent for longer than the grace period; return their ids."""
        now = self._clock()
        gone = [
            e.id
            for e in self._entries.values()
            if now - e.last_seen > self._cluster.removal_grace_s
        ]
        for balancer_id in gone:
            del self._entries[balancer_id]
            logger.warning(
                "removed balancer %s: no heartbeat for %.0f s",
                balancer_id,
                self._cluster.removal_grace_s,
            )
        return gone

    def entries(self) -> list[BalancerEntry]:
        """Every balancer, in registration order (after pruning)."""
        self.prune()
        return sorted(self._entries.values(), key=lambda e: e.order)

    def get(self, balancer_id: str) -> BalancerEntry | None:
        return self._entries.get(balancer_id)

    def health(self, entry: BalancerEntry) -> Health:
        return entry.health(self._clock(), self._cluster.heartbeat_ttl_s)

    def routable(self, exclude: Iterable[str] = ()) -> list[BalancerEntry]:
        """Healthy balancers holding the fleet's voices, not in ``exclude``, in registration
        order."""
        skip = set(exclude)
        return [
            e
            for e in self.entries()
            if e.id not in skip and e.voices_ready and self.health(e) is Health.HEALTHY
        ]

    def stale(self, entries: Iterable[BalancerEntry]) -> list[BalancerEntry]:
        """Those of ``entries`` whose idle count is older than ``capacity_fresh_s``."""
        now = self._clock()
        return [e for e in entries if now - e.capacity_at > self._cluster.fresh_for_s]

    @staticmethod
    def candidates(entries: Iterable[BalancerEntry]) -> list[Candidate]:
        """What a strategy needs to know of each entry."""
        return [Candidate(e.id, e.free, e.order) for e in entries]
