"""The balancer's HTTP API through the broker: speech with failover, listings, voice management.

Speech (``POST /v1/text-to-speech/{voice_id}`` and its ``/stream``, ``/with-timestamps`` and
``/stream/with-timestamps`` variants) goes the websocket's way (:mod:`xtts_broker.proxy`):

- **Auth at the broker**, with the places and order of the protocol
  (:func:`xtts_core.protocol.request_api_key`, docs/protocol.md §1.2): without a valid key, 401
  ``{"detail": {"status": "invalid_api_key", "message": ...}}`` before any balancer is involved.
- **Routing**: the strategy picks a balancer and a slot is reserved for the whole answer. The
  request goes out with the broker's proof of origin over method and path
  (:func:`xtts_core.cluster.sign_request`) and a fresh session id in
  :data:`~xtts_core.cluster.SESSION_ID_HEADER`; the path is percent-encoded again, the query
  re-encoded, the body relayed as it came (at most :data:`MAX_BODY_BYTES`).
- **Failover**: the body is kept, so until the balancer's status line arrives nothing has
  reached the client and any failure can be retried on the next balancer (at most
  ``routing.max_attempts``): a connection error or timeout (the balancer is also taken out of
  rotation until its next heartbeat, as for a websocket) or a "busy" answer, 429 or 503 (the
  HTTP form of close 1013; the balancer stays in rotation).
- **Request id**: the session id is the request's ``request-id`` (:mod:`xtts_core.answer_headers`),
  so it names the session in the broker's and the balancer's logs alike.
- **Relay**: status, ``Content-Type`` and the other end-to-end headers (the balancer's
  ``character-cost`` and concurrency headers among them), then the body chunk by
  chunk as the balancer sends it. A balancer that fails mid-answer, or a broker that stops it at
  shutdown (:class:`~xtts_broker.state.BrokerState` drains HTTP answers like streams), aborts the
  connection, so the client sees a truncated transfer rather than a short file that looks
  complete, as when it talks to a balancer. A client that leaves closes the balancer's
  connection at once, which cancels the job there.
- **No capacity**: every attempt busy or broken is 429 ``no_capacity`` while some balancer is
  healthy, else 503 ``no_balancer``; every refusal is the protocol's error body (§4.4).

Listings (``GET /v1/models``, ``/v1/voices``, ``/v1/voices/{voice_id}``, ``/v2/voices``, the
voice settings, ``/v1/user`` and ``/v1/user/subscription``) hold no slot: the first
healthy balancer that answers serves them (503 ``no_balancer`` when none does); every routable
balancer holds the fleet's voices (:mod:`xtts_broker.voice_sync`), so any of them lists the same.
Voice management (``POST /v1/voices/add``, ``DELETE /v1/voices/{voice_id}``) goes to every
balancer (:mod:`xtts_broker.voice_api`), single-use tokens are the broker's own
(:mod:`xtts_broker.tokens`) and coqui's API is relayed by :mod:`xtts_broker.coqui_proxy`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import parse_qsl, quote, urlencode

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from xtts_broker.registry import BalancerEntry
from xtts_broker.route_log import RouteRecord
from xtts_broker.router import Route as Routed
from xtts_broker.state import BrokerState
from xtts_core.cluster import sign_request
from xtts_core.protocol import ErrorCode, error_body, http_status, request_api_key

__all__ = ["MAX_BODY_BYTES", "http_routes"]

logger = logging.getLogger(__name__)

#: Largest speech request body relayed; texts are limited far below this by the balancers.
MAX_BODY_BYTES: Final = 1024 * 1024
#: Larger bodies for coqui's API: latents in JSON (about 0.7 MB a voice) and a clip to clone.
_BODY_LIMITS: Final = {
    "/tts_stream": 4 * 1024 * 1024,
    "/tts": 4 * 1024 * 1024,
    "/clone_speaker": 32 * 1024 * 1024,
}
#: The speech endpoints, after ``/v1/text-to-speech/{voice_id}``.
_SPEECH_SUFFIXES: Final = ("", "/stream", "/with-timestamps", "/stream/with-timestamps")
#: Answers that mean "busy, try elsewhere" (the HTTP form of close 1013).
_BUSY_STATUSES: Final = frozenset({429, 503})
#: Request headers passed on to the balancer (auth is replaced by the broker's signature).
_FORWARDED: Final = ("content-type", "accept")
#: Answer headers not passed back: hop-by-hop ones, and those Hypercorn sets for the client.
_NOT_RELAYED: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "date",
        "server",
    }
)


def _state(request: Request) -> BrokerState:
    state: BrokerState = request.app.state.broker
    return state


def _error(error: ErrorCode, message: str, record: RouteRecord | None = None) -> JSONResponse:
    """The protocol's error body with the status of ``error`` (docs/protocol.md §4.4), noted
    in ``record`` when one is given."""
    status = http_status(error.value)
    if record is not None:
        record.refused(error.value, status)
        record.write()
    return JSONResponse(error_body(error, message), status_code=status)


def _refusal(request: Request, record: RouteRecord | None = None) -> Response | None:
    """The answer to a request the broker does not take (draining, no valid key), else ``None``;
    ``record`` gets the key's id."""
    state = _state(request)
    if state.draining:
        message = "The broker is shutting down; retry in a moment."
        return _error(ErrorCode.SHUTTING_DOWN, message, record)
    key = request_api_key(request.headers, request.query_params)
    if state.settings.auth.enabled and not state.api_keys.check(key):
        state.metrics.rejected.labels("auth").inc()
        return _error(
            ErrorCode.INVALID_API_KEY,
            "Invalid or missing API key: send it in the xi-api-key header.", record,
        )  # fmt: skip
    if record is not None:
        record.key(key)
    return None


def _relayed_headers(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [
        (name, value)
        for name, value in response.headers.raw
        if name.decode("latin-1").lower() not in _NOT_RELAYED
    ]


async def _send(
    state: BrokerState, entry: BalancerEntry, request: Request, body: bytes, session_id: str
) -> httpx.Response | None:
    """``request`` sent to ``entry``, signed; its answer with the body still to read, or
    ``None`` when the next balancer should be tried (failure or busy, logged and counted)."""
    settings = state.settings
    path = request.url.path
    url = entry.registration.base_url + quote(path, safe="/")
    query = urlencode(parse_qsl(request.url.query, keep_blank_values=True))
    if query:
        url += f"?{query}"
    headers = sign_request(
        settings.cluster.secret.get_secret_value(), request.method, path, session_id=session_id
    )
    headers.update({name: request.headers[name] for name in _FORWARDED if name in request.headers})
    # Relayed byte for byte: the balancer must not compress what the client did not ask for.
    headers["accept-encoding"] = "identity"
    timeout = httpx.Timeout(
        settings.routing.read_timeout_s, connect=settings.routing.connect_timeout_s
    )
    outgoing = state.http.build_request(
        request.method, url, content=body, headers=headers, timeout=timeout
    )
    try:
        response = await state.http.send(outgoing, stream=True)
    except httpx.TransportError as exc:
        problem = f"cannot reach it: {' '.join(str(exc).split()) or type(exc).__name__}"
        state.registry.mark_down(entry.id, problem)
        state.metrics.failovers.labels("connect").inc()
        logger.info("session=%s balancer %s: %s; trying the next", session_id, entry.id, problem)
        return None
    if response.status_code in _BUSY_STATUSES:
        await response.aclose()
        state.metrics.failovers.labels(f"http_{response.status_code}").inc()
        logger.info(
            "session=%s balancer %s answered %d (busy); trying the next",
            session_id,
            entry.id,
            response.status_code,
        )
        return None
    return response


async def _body(
    request: Request, limit: int, too_large: str, record: RouteRecord | None = None
) -> bytes | Response:
    """The request body, or 413 with the message ``too_large`` (noted in ``record``) once it
    passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return _error(ErrorCode.PAYLOAD_TOO_LARGE, too_large, record)
        chunks.append(chunk)
    return b"".join(chunks)


async def speech(request: Request) -> Response | _Relay:
    """``POST /v1/text-to-speech/{voice_id}[/stream][/with-timestamps]``, OpenAI's and coqui's
    speech routes (module docstring)."""
    state = _state(request)
    session_id: str = request.state.request_id  # the answer's request-id (xtts_core.answer_headers)
    voice = request.path_params.get("voice_id", "-")  # OpenAI's speech names it in the body
    record = RouteRecord(session_id, "http", voice, state.settings.service.strategy)
    refusal = _refusal(request, record)
    limit = _BODY_LIMITS.get(request.url.path, MAX_BODY_BYTES)
    if refusal is not None:
        await _body(request, limit, "")  # read first, so a keep-alive connection stays usable
        return refusal
    body = await _body(request, limit, f"body larger than {limit} bytes", record)
    if isinstance(body, Response):
        return body
    record.bytes_in = len(body)
    loop = asyncio.get_running_loop()
    started = loop.time()
    logger.info("session=%s client %s %s", session_id, request.method, request.url.path)
    tried: set[str] = set()
    for _ in range(state.settings.routing.max_attempts):
        route = await state.router.route(session_id, tried)
        if route is None:
            break
        tried.add(route.entry.id)
        record.tried(route.entry.id)
        try:
            response = await _send(state, route.entry, request, body, session_id)
        except BaseException:
            state.registry.release(route.reservation)
            raise
        if response is None:
            state.registry.release(route.reservation)
            continue
        state.registry.mark_connected(route.reservation)
        state.metrics.sessions.labels(route.entry.id).inc()
        state.metrics.routing_seconds.observe(loop.time() - started)
        return _Relay(state, route, response, record)
    state.metrics.rejected.labels("no_capacity").inc()
    if state.registry.routable():
        message = "Every balancer is busy; try again in a moment."
        return _error(ErrorCode.NO_CAPACITY, message, record)
    return _error(ErrorCode.NO_BALANCER, "No balancer is available; try again later.", record)


async def listing(request: Request) -> Response:
    """The listings and look-ups of the module docstring: any healthy balancer answers."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    state = _state(request)
    session_id: str = request.state.request_id
    for entry in state.registry.routable()[: state.settings.routing.max_attempts]:
        reply = await _answer(state, entry, request, b"", session_id)
        if reply is not None:
            return reply
    return _error(ErrorCode.NO_BALANCER, "No balancer is available; try again later.")


async def _answer(
    state: BrokerState, entry: BalancerEntry, request: Request, body: bytes, session_id: str
) -> Response | None:
    """``entry``'s whole answer to ``request`` as the client's response; ``None`` when the next
    balancer should be tried (it failed, was busy, or broke off)."""
    response = await _send(state, entry, request, body, session_id)
    if response is None:
        return None
    try:
        content = await response.aread()
    except httpx.TransportError as exc:
        state.registry.mark_down(entry.id, f"answer broke off: {exc}")
        return None
    finally:
        await response.aclose()
    reply = Response(content, response.status_code)  # sets content-length only
    reply.raw_headers.extend(_relayed_headers(response))
    return reply


class _Relay:
    """The ASGI answer streaming one balancer's response to the client.

    It is one of the broker's open streams while it runs, so a shutdown waits for it and then
    stops it (:meth:`stop`), which aborts the client's connection.
    """

    def __init__(
        self, state: BrokerState, route: Routed, response: httpx.Response, record: RouteRecord
    ) -> None:
        self._state = state
        self._route = route
        self._response = response
        self._record = record
        record.status = response.status_code
        self._session_id = record.session_id
        self._pump: asyncio.Task[None] | None = None
        self._stopping = False
        self._closed = asyncio.Event()

    def stop(self) -> None:
        self._stopping = True
        if self._pump is not None:
            self._pump.cancel()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state, entry = self._state, self._route.entry
        state.streams.add(self)
        state.metrics.active.inc()
        try:
            pump = self._pump = asyncio.create_task(self._forward(send))
            gone = asyncio.create_task(_disconnected(receive))
            if self._stopping:
                pump.cancel()
            try:
                await asyncio.wait({pump, gone}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                pump.cancel()
                gone.cancel()
                await asyncio.gather(pump, gone, return_exceptions=True)
        finally:
            await self._response.aclose()
            state.registry.release(self._route.reservation)
            state.streams.discard(self)
            state.metrics.active.dec()
            self._closed.set()
        # Returning without the body's last chunk is how an answer is cut off: the server
        # closes the connection and the client sees a broken body, never a short one that
        # looks complete (and no traceback lands in the log for an expected failure).
        record = self._record
        if pump.done() and not pump.cancelled() and pump.exception() is None:
            record.answer_complete()
        elif gone.done() and not gone.cancelled():
            logger.info("session=%s client left; closed balancer %s", self._session_id, entry.id)
            record.error = ErrorCode.CLIENT_LEFT.value
        elif pump.cancelled():
            logger.info(
                "session=%s stopped by the broker's shutdown; answer cut off", self._session_id
            )
            record.error = ErrorCode.SHUTTING_DOWN.value
        else:
            logger.info("session=%s answer from %s cut off", self._session_id, entry.id)
            record.error = ErrorCode.BALANCER_FAILED.value
        record.write()

    async def _forward(self, send: Send) -> None:
        response = self._response
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": _relayed_headers(response),
            }
        )
        try:
            async for chunk in response.aiter_raw():
                self._record.body_to_client(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.TransportError as exc:
            # The balancer stays in rotation, as for a websocket that fails after its first
            # audio: a cut-off answer is usually one failed job (a worker died), and a balancer
            # that is really gone fails its next connect, or its heartbeat.
            problem = f"answer broke off: {' '.join(str(exc).split()) or type(exc).__name__}"
            self._state.metrics.rejected.labels("balancer_failed").inc()
            logger.warning(
                "session=%s balancer %s %s", self._session_id, self._route.entry.id, problem
            )
            raise
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone (its request body was read before)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def http_routes() -> list[Route]:
    """The broker's routes for the balancer's HTTP API."""
    handlers: list[tuple[str, Callable[[Request], Awaitable[Response | _Relay]], list[str]]] = [
        *(
            (f"/v1/text-to-speech/{{voice_id}}{suffix}", speech, ["POST"])
            for suffix in _SPEECH_SUFFIXES
        ),
        ("/v1/models", listing, ["GET"]),
        ("/v1/voices", listing, ["GET"]),
        ("/v2/voices", listing, ["GET"]),
        ("/v1/voices/settings/default", listing, ["GET"]),
        ("/v1/voices/{voice_id}/settings", listing, ["GET"]),
        ("/v1/user", listing, ["GET"]),
        ("/v1/user/subscription", listing, ["GET"]),
        ("/v1/voices/{voice_id}", listing, ["GET"]),
    ]
    return [Route(path, handler, methods=methods) for path, handler, methods in handlers]
