"""The Starlette application: ``create_app(settings)`` assembles the routes and the lifespan.

The lifespan builds the :class:`~xtts_balancer.state.BalancerState` inside ``try/finally``:
metrics, the worker supervisor (workers load and warm up in the background) and the slot pool;
whatever happens, the workers are stopped on the way out. This module only assembles: state lives
in :mod:`xtts_balancer.state`, endpoints in their own modules (operational ones in
:mod:`xtts_balancer.ops`, the ElevenLabs API in :mod:`xtts_balancer.openapi`'s table and the
websocket dialects).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, WebSocketRoute

from xtts_balancer.admin import AdminGate
from xtts_balancer.cluster_voices_api import cluster_voice_routes
from xtts_balancer.http_common import ApiError, api_error_response
from xtts_balancer.openapi import api_routes
from xtts_balancer.ops import ops_routes
from xtts_balancer.playground import playground_routes
from xtts_balancer.settings import BalancerSettings
from xtts_balancer.state import BalancerState
from xtts_balancer.ws import stream_input
from xtts_balancer.ws_multi import multi_stream_input
from xtts_core.asgi import LingeringClose

__all__ = ["create_app"]


def create_app(settings: BalancerSettings) -> Starlette:
    """The balancer application for ``settings`` (workers start with the lifespan)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        cache_dir = settings.model.voice_cache_dir
        temporary = cache_dir is None
        if cache_dir is None:
            cache_dir = Path(tempfile.mkdtemp(prefix="xtts-voices-"))
        state = BalancerState(settings, cache_dir)
        app.state.balancer = state
        try:
            state.supervisor.start()
            if state.broker is not None:
                state.broker.start()
            yield
        finally:
            if state.broker is not None:
                await state.broker.stop()
            await state.supervisor.stop()
            if temporary:
                shutil.rmtree(cache_dir, ignore_errors=True)

    routes: list[BaseRoute] = [
        *ops_routes(metrics=settings.metrics.enabled),
        WebSocketRoute("/v1/text-to-speech/{voice_id}/stream-input", stream_input),
        WebSocketRoute("/v1/text-to-speech/{voice_id}/multi-stream-input", multi_stream_input),
        *api_routes(),  # HTTP speech, voices, models, /openapi.json
        *playground_routes(settings),  # the browser page (playground.enabled)
        *cluster_voice_routes(),  # the fleet's voice library (broker mode)
    ]
    gate = Middleware(AdminGate, admin=settings.admin)  # admin key / admin listener
    return Starlette(
        routes=routes, lifespan=lifespan, middleware=[Middleware(LingeringClose), gate],
        exception_handlers={ApiError: api_error_response},
    )  # fmt: skip
