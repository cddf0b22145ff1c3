"""Choosing a balancer for one stream: refresh stale capacity concurrently, then choose and reserve.

Capacity comes from heartbeats; only entries whose idle count is older than
``cluster.capacity_fresh_s`` are probed (``GET /workers/idle``), **all at once**, and concurrent
streams share one in-flight probe per balancer. A failed probe takes the balancer out of rotation
until its next heartbeat instead of forgetting it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

import httpx
from pydantic import ValidationError

from xtts_broker.registry import BalancerEntry, Registry, Reservation
from xtts_broker.settings import BrokerSettings
from xtts_broker.strategy import choose
from xtts_core.cluster import IDLE_PATH, IdleWorkers, sign_request

__all__ = ["Route", "Router"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """Where one attempt of a stream goes, with the slot held for it."""

    entry: BalancerEntry
    reservation: Reservation
    reason: str


class Router:
    """Picks balancers for streams; one per broker, shared by every session."""

    def __init__(
        self,
        registry: Registry,
        settings: BrokerSettings,
        http: httpx.AsyncClient,
        rng: random.Random | None = None,
    ) -> None:
        self._registry = registry
        self._settings = settings
        self._http = http
        self._rng = rng or random.Random()
        self._probes: dict[str, asyncio.Task[None]] = {}

    async def route(self, session_id: str, exclude: set[str]) -> Route | None:
        """A balancer with a free slot (reserved for this stream), or ``None`` if there is none.

        Args:
            session_id: for the log line.
            exclude: balancers this stream already tried.
        """
        stale = self._registry.stale(self._registry.routable(exclude))
        if stale:
            await asyncio.gather(*(self._probe(entry) for entry in stale))
        # No await from here on: the choice and the reservation are one atomic step.
        entries = self._registry.routable(exclude)
        choice = choose(
            self._settings.service.strategy, self._registry.candidates(entries), self._rng
        )
        if choice is None:
            logger.info(
                "session=%s no balancer with a free slot (%d healthy, %d tried)",
                session_id,
                len(entries),
                len(exclude),
            )
            return None
        entry = next(e for e in entries if e.id == choice.candidate.id)
        reservation = self._registry.reserve(entry.id)
        logger.info("session=%s route %s", session_id, choice.reason)
        return Route(entry, reservation, choice.reason)

    async def _probe(self, entry: BalancerEntry) -> None:
        task = self._probes.get(entry.id)
        if task is None:
            task = asyncio.create_task(self._probe_once(entry))
            self._probes[entry.id] = task
            task.add_done_callback(lambda _: self._probes.pop(entry.id, None))
        # shield: a client that leaves mid-probe must not cancel the probe other streams await.
        await asyncio.shield(task)

    async def _probe_once(self, entry: BalancerEntry) -> None:
        started = self._registry.now()
        secret = self._settings.cluster.secret.get_secret_value()
        url = entry.registration.base_url + IDLE_PATH
        try:
            response = await self._http.get(
                url,
                headers=sign_request(secret, "GET", IDLE_PATH),
                timeout=self._settings.service.balancer_timeout_seconds,
            )
            response.raise_for_status()
            idle = IdleWorkers.model_validate_json(response.content).idle_workers
        except (httpx.HTTPError, ValidationError) as exc:
            problem = " ".join(str(exc).split()) or type(exc).__name__
            self._registry.mark_down(entry.id, f"probe of {url} failed: {problem}")
            return
        logger.debug("probed %s: %d idle", entry.id, idle)
        self._registry.record_probe(entry.id, idle, started)
