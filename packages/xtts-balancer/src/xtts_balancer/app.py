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
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

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
from xtts_core.answer_headers import AnswerHeaders
from xtts_core.asgi import LingeringClose
from xtts_core.cluster import SESSION_ID_HEADER

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
    headers = Middleware(AnswerHeaders, request_id=_request_id, extra=_concurrency_headers)
    return Starlette(
        routes=routes, lifespan=lifespan, middleware=[Middleware(LingeringClose), headers, gate],
        exception_handlers={ApiError: api_error_response},
    )  # fmt: skip


def _request_id(scope: MutableMapping[str, Any]) -> str:
    """The id of an HTTP request: in broker mode the broker's session id (the request is
    refused unless the broker signed it), else a fresh one."""
    state = scope["app"].state.balancer
    if state.broker is not None:
        for name, value in scope["headers"]:
            if name == SESSION_ID_HEADER.encode():
                return str(value.decode("latin-1"))
    return secrets.token_hex(8)


def _concurrency_headers(scope: MutableMapping[str, Any]) -> list[tuple[str, str]]:
    """ElevenLabs' concurrency headers from the slot pool: worker slots in use, and all slots of
    the warm workers."""
    pool = scope["app"].state.balancer.pool
    busy = pool.capacity - pool.free_slots
    return [
        ("current-concurrent-requests", str(busy)),
        ("maximum-concurrent-requests", str(pool.capacity)),
    ]
