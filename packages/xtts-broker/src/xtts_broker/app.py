"""The broker's Starlette app: cluster endpoints, client websockets, health and metrics.

Routes:

- ``POST /broker/register`` / ``/broker/heartbeat`` / ``/broker/deregister``: balancers, signed
  with the cluster secret (:func:`xtts_core.cluster.verify_request`); bodies are the
  :mod:`xtts_core.cluster` schemas. Errors are 4xx ``{"detail": "<one line>"}`` and store nothing.
- ``GET /broker/balancers``: the registry with health and capacity, for operators
  (``Authorization: Bearer <cluster secret>``).
- ``WS /v1/text-to-speech/{voice_id}/stream-input`` and ``…/multi-stream-input``: client streams,
  relayed to a balancer by :class:`~xtts_broker.proxy.StreamProxy`.
- ``POST /v1/text-to-speech/{voice_id}`` (and ``/stream``, ``/with-timestamps``,
  ``/stream/with-timestamps``), ``GET /v1/models``, ``/v1/voices``, ``/v1/voices/{voice_id}``,
  ``/v2/voices``, the voice settings, ``/v1/user`` and ``/v1/user/subscription``: the
  balancers' HTTP API, relayed by :mod:`xtts_broker.http_proxy`.
- ``POST /v1/voices/add``, ``DELETE /v1/voices/{voice_id}``: the fleet's voice library, on every
  balancer (:mod:`xtts_broker.voice_api`), kept equal by :mod:`xtts_broker.voice_sync`.
- ``GET /health`` (the process answers), ``GET /ready`` (at least one healthy balancer and not
  shutting down), ``GET /metrics`` (Prometheus).
- ``GET /`` and ``/playground/...``: the balancers' browser page (:mod:`xtts_broker.playground`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import random
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import httpx
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from xtts_broker.__about__ import __version__
from xtts_broker.coqui_proxy import coqui_routes
from xtts_broker.http_proxy import http_routes
from xtts_broker.metrics import BrokerMetrics
from xtts_broker.openai_proxy import openai_routes
from xtts_broker.playground import playground_routes
from xtts_broker.proxy import StreamProxy
from xtts_broker.registry import Health, Registry
from xtts_broker.router import Router
from xtts_broker.settings import BrokerSettings, is_loopback_host
from xtts_broker.state import BrokerState
from xtts_broker.tokens import token_routes
from xtts_broker.voice_api import voice_routes
from xtts_broker.voice_sync import VoiceSync
from xtts_core.answer_headers import AnswerHeaders
from xtts_core.asgi import LingeringClose
from xtts_core.cluster import (
    BALANCERS_PATH,
    DEREGISTER_PATH,
    HEARTBEAT_PATH,
    REGISTER_PATH,
    ApiKeys,
    BalancerDeregistration,
    BalancerHeartbeat,
    BalancerRegistration,
    OriginError,
    RegistrationAccepted,
    ReplayGuard,
    verify_request,
)
from xtts_core.single_use import SingleUseTokens

__all__ = ["create_app"]

_M = TypeVar("_M", bound=BaseModel)

#: Largest cluster request body; registrations are a few hundred bytes.
_MAX_BODY = 64 * 1024


def _state(request: Request | WebSocket) -> BrokerState:
    state: BrokerState = request.app.state.broker
    return state


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return " ".join("; ".join(parts).split())


async def _signed(request: Request, model: type[_M]) -> _M | JSONResponse:
    """The verified, parsed body of a balancer's request, or the 4xx response to send."""
    if int(request.headers.get("content-length") or 0) > _MAX_BODY:
        return _error(413, f"body larger than {_MAX_BODY} bytes")
    try:
        body = await request.body()
    except ClientDisconnect:  # a balancer that shut down mid-request: nobody to answer
        return _error(400, "the request body did not arrive")
    if len(body) > _MAX_BODY:
        return _error(413, f"body larger than {_MAX_BODY} bytes")
    state = _state(request)
    cluster = state.settings.cluster
    try:
        request_id = verify_request(
            cluster.secret.get_secret_value(),
            request.method,
            request.url.path,
            request.headers,
            body=body,
            max_skew_s=cluster.max_clock_skew_s,
        )
        state.replays.claim(request_id)  # each signed request is accepted once
    except OriginError as exc:
        return _error(401, str(exc))
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        return _error(422, f"invalid {model.__name__}: {_describe(exc)}")


def _address_problem(registration: BalancerRegistration, broker_on_loopback: bool) -> str | None:
    host = registration.advertised_host
    try:
        if ipaddress.ip_address(host.strip("[]")).is_unspecified:
            return f"advertised address {host} is a wildcard, not an address to connect to"
    except ValueError:
        pass
    if not broker_on_loopback and is_loopback_host(host):
        return (
            f"advertised address {host} is loopback but this broker is remote; set the "
            "balancer's advertised url to an address the broker can reach"
        )
    return None


async def register(request: Request) -> Response:
    parsed = await _signed(request, BalancerRegistration)
    if isinstance(parsed, Response):
        return parsed
    state = _state(request)
    problem = _address_problem(parsed, state.settings.service.on_loopback)
    if problem is not None:
        return _error(422, problem)
    entry = state.registry.register(parsed)
    if state.voice_sync is not None:
        await state.voice_sync.admit(entry)
    cluster = state.settings.cluster
    reply = RegistrationAccepted(
        heartbeat_interval_s=cluster.heartbeat_interval_s, heartbeat_ttl_s=cluster.heartbeat_ttl_s
    )
    return JSONResponse(reply.model_dump())


async def heartbeat(request: Request) -> Response:
    parsed = await _signed(request, BalancerHeartbeat)
    if isinstance(parsed, Response):
        return parsed
    if not _state(request).registry.heartbeat(parsed):
        return _error(404, f"balancer {parsed.id} is not registered; register again")
    return JSONResponse({"status": "ok"})


async def deregister(request: Request) -> Response:
    parsed = await _signed(request, BalancerDeregistration)
    if isinstance(parsed, Response):
        return parsed
    removed = _state(request).registry.deregister(parsed.id)
    return JSONResponse({"status": "ok", "removed": removed})


async def balancers(request: Request) -> Response:
    state = _state(request)
    secret = state.settings.cluster.secret.get_secret_value().encode("utf-8")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode("utf-8"), secret):
        return _error(401, "send Authorization: Bearer <cluster secret>")
    registry = state.registry
    now = registry.now()
    listing = [
        {
            "id": e.id,
            "host": e.registration.host,
            "port": e.registration.port,
            "instances": e.registration.instances,
            "url": e.registration.base_url,
            "version": e.registration.version,
            "health": registry.health(e).value,
            "down_reason": e.down_reason,
            "voices_ready": e.voices_ready,
            "capacity": e.capacity,
            "idle": e.idle,
            "reserved": e.pending,
            "free": e.free,
            "last_seen_s": round(now - e.last_seen, 3),
        }
        for e in registry.entries()
    ]
    return JSONResponse({"balancers": listing})


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "version": __version__})


async def ready(request: Request) -> Response:
    state = _state(request)
    healthy = sum(1 for e in state.registry.entries() if state.registry.health(e) is Health.HEALTHY)
    if state.draining:
        return JSONResponse({"status": "shutting down"}, status_code=503)
    if healthy == 0:
        return JSONResponse({"status": "no healthy balancer"}, status_code=503)
    return JSONResponse({"status": "ready", "healthy_balancers": healthy})


async def metrics(request: Request) -> Response:
    state = _state(request)
    return Response(state.metrics.render(state.registry), media_type=CONTENT_TYPE_LATEST)


async def stream_input(websocket: WebSocket) -> None:
    await StreamProxy(_state(websocket), websocket, "stream-input").run()


async def multi_stream_input(websocket: WebSocket) -> None:
    await StreamProxy(_state(websocket), websocket, "multi-stream-input").run()


def create_app(
    settings: BrokerSettings,
    *,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> Starlette:
    """The broker app; its state (``app.state.broker``) exists while the lifespan runs.

    Args:
        settings: the broker's settings.
        clock: monotonic seconds for heartbeat ages (tests pass a fake one).
        rng: random source of the ``random`` strategy.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        registry = Registry(settings.cluster, clock=clock)
        # No cap on connections: every proxied HTTP answer holds one for as long as it streams,
        # and the balancers' own slot limits are what bound them.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        async with httpx.AsyncClient(limits=limits) as http:
            voice_sync = VoiceSync(settings, registry, http)
            app.state.broker = BrokerState(
                settings=settings,
                registry=registry,
                router=Router(registry, settings, http, rng),
                metrics=BrokerMetrics(),
                api_keys=ApiKeys(settings.auth.api_key_hashes),
                http=http,
                replays=ReplayGuard(settings.cluster.max_clock_skew_s),
                single_use_tokens=SingleUseTokens(settings.auth.single_use_token_ttl_s),
                voice_sync=voice_sync,
            )
            syncing = asyncio.create_task(voice_sync.run())
            try:
                yield
            finally:
                syncing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await syncing

    routes = [
        Route(REGISTER_PATH, register, methods=["POST"]),
        Route(HEARTBEAT_PATH, heartbeat, methods=["POST"]),
        Route(DEREGISTER_PATH, deregister, methods=["POST"]),
        Route(BALANCERS_PATH, balancers, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        WebSocketRoute("/v1/text-to-speech/{voice_id}/stream-input", stream_input),
        WebSocketRoute("/v1/text-to-speech/{voice_id}/multi-stream-input", multi_stream_input),
        *http_routes(),
        *openai_routes(),  # OpenAI's speech API, relayed the same way
        *coqui_routes(),  # coqui's xtts-streaming-server API, likewise
        *token_routes(),  # single-use tokens: minted here
        *voice_routes(),
        *playground_routes(),  # the balancers' browser page, relayed
    ]
    # request-id on every answer: the session id a relayed request carries to its balancer
    # (whose answer repeats it), a fresh one for the broker's own answers
    headers = Middleware(AnswerHeaders, request_id=lambda scope: secrets.token_hex(8))
    return Starlette(
        routes=routes, lifespan=lifespan, middleware=[Middleware(LingeringClose), headers]
    )
