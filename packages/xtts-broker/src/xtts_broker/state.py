"""What one running broker holds: settings, registry, router, voice sync, metrics, open streams."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from xtts_broker.metrics import BrokerMetrics
from xtts_broker.registry import Registry
from xtts_broker.router import Router
from xtts_broker.settings import BrokerSettings
from xtts_broker.voice_sync import VoiceSync
from xtts_core.cluster import ApiKeys, ReplayGuard
from xtts_core.single_use import SingleUseTokens

__all__ = ["BrokerState", "Stoppable"]

logger = logging.getLogger(__name__)


class Stoppable(Protocol):
    """An open stream (websocket, or proxied HTTP answer) that can be told to stop and waited for."""

    def stop(self) -> None: ...

    async def wait_closed(self) -> None: ...


@dataclass(eq=False)
class BrokerState:
    """Built by the app's lifespan; shared by every request of one broker."""

    settings: BrokerSettings
    registry: Registry
    router: Router
    metrics: BrokerMetrics
    api_keys: ApiKeys
    http: httpx.AsyncClient
    """Shared by capacity probes and proxied HTTP requests (one connection pool per broker)."""
    replays: ReplayGuard
    """Request ids of the balancers' signed requests seen while their signatures are valid."""
    single_use_tokens: SingleUseTokens
    """Tokens of ``POST /v1/single-use-token/tts_websocket``, each accepted by one socket here."""
    voice_sync: VoiceSync | None = None
    """Keeps the balancers' voice libraries equal (started by the app's lifespan)."""
    streams: set[Stoppable] = field(default_factory=set)
    draining: bool = False
    """Set at shutdown: /ready fails and new client streams are refused with 1001."""

    async def drain(self, grace_s: float) -> None:
        """Stop taking streams, let open ones run up to ``grace_s``, then close the rest (1001)."""
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while self.streams and loop.time() < deadline:
            await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
        left = list(self.streams)
        if left:
            logger.info("closing %d stream(s) still open after %.1f s (1001)", len(left), grace_s)
        for stream in left:
            stream.stop()
        await asyncio.gather(*(stream.wait_closed() for stream in left))
