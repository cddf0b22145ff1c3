"""One client stream through the broker: auth, routing with failover, and a two-way relay.

What happens, in order:

- **Auth at the broker**: the key is found where and in the order the protocol says
  (:func:`xtts_core.protocol.request_api_key`, then the first message's
  :func:`~xtts_core.protocol.message_api_key`; docs/protocol.md §1.2), or a single-use token
  (:mod:`xtts_broker.tokens`), as at the balancer. A bad or missing key: the ElevenLabs-style
  error and close 1008, before any balancer is involved.
- **Proof of origin**: every websocket opened to a balancer is signed with the session id
  (:func:`xtts_broker.balancer_target.balancer_stream_target`).
- **Failover**: until the first balancer message reaches the client, every client frame is kept.
  If the balancer refuses the handshake, cannot be reached, or closes with a code that means "not
  now" (1013 no capacity, 1001/1012 going away, 1006/1011 failure), the next balancer gets the same
  frames and the client notices only latency. A balancer's "no capacity" error message is held back
  for that reason. After the first message, a failure reaches the client as an error and a
  non-1000 close. No balancer left: ``no_capacity`` error and close 1013.
- **Relay**: frames go both ways in order through bounded buffers (a slow reader slows the writer
  instead of growing memory), and close codes and reasons are passed on in both directions. A
  client that leaves closes its balancer socket at once, which frees the balancer's slot.
  Hypercorn 0.18 reports a client's close as 1006 whatever its code (pgjones/hypercorn#127): the
  balancer then sees 1001 "client disconnected"; a code it does report is passed on unchanged.
- **The log line**: one per stream, its :class:`~xtts_broker.route_log.RouteRecord`, at its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable
from typing import Final, TypeVar

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from xtts_broker.balancer_target import balancer_stream_target
from xtts_broker.frames import (
    FAILOVER_CODES,
    SENDABLE,
    BackendClosed,
    ClientGone,
    Frame,
    first_message_key,
    is_no_capacity,
    sendable,
)
from xtts_broker.route_log import RouteRecord
from xtts_broker.router import Route
from xtts_broker.state import BrokerState
from xtts_broker.tokens import token_admits
from xtts_core.aio import wait_within
from xtts_core.protocol import (
    CloseCode,
    ErrorCode,
    ErrorMessage,
    close_reason,
    request_api_key,
)

__all__ = ["StreamProxy"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
#: Handshake statuses that mean "busy", not "broken": no reason to take the balancer out.
_BUSY_STATUSES: Final = frozenset({429, 503})
#: Client frames buffered towards the balancer; a full buffer stops reading the client.
_INBOX_FRAMES: Final = 32
#: Largest frame accepted from a balancer (the protocol keeps them under 1 MiB).
_BACKEND_MAX_FRAME: Final = 16 * 1024 * 1024


class _StoppedError(Exception):
    """The broker is shutting down this stream."""


class StreamProxy:
    """Serves one client websocket on ``…/stream-input`` or ``…/multi-stream-input``."""

    def __init__(self, state: BrokerState, websocket: WebSocket, endpoint: str) -> None:
        self._state = state
        self._ws = websocket
        self._endpoint = endpoint
        self.session_id = secrets.token_hex(8)
        self.record = RouteRecord(
            self.session_id, endpoint, websocket.path_params["voice_id"],
            state.settings.service.strategy,
        )  # fmt: skip
        self._inbox: asyncio.Queue[Frame | ClientGone] = asyncio.Queue(_INBOX_FRAMES)
        self._replay: list[Frame] = []
        # Set when the first balancer message reached the client: no failover after that.
        self._committed = False
        self._routed = False  # routing latency is observed once, at the first connect
        self._client_gone: ClientGone | None = None
        self._stop = asyncio.Event()
        self._closed = asyncio.Event()

    # --- Stoppable --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Close this stream with 1001 (broker shutting down)."""
        self._stop.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # --- the session ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Accept the client, authenticate, route with failover, relay until either side closes."""
        state, ws = self._state, self._ws
        await ws.accept()
        if state.draining:
            await self._reject(
                "the broker is shutting down; reconnect", ErrorCode.SHUTTING_DOWN,
                CloseCode.GOING_AWAY,
            )  # fmt: skip
            self._closed.set()
            self.record.write()
            return
        state.streams.add(self)
        state.metrics.active.inc()
        reader = asyncio.create_task(self._read_client())
        try:
            if await self._authenticate():
                await self._route_and_relay(self.record.voice)
        except _StoppedError:
            await self._close_client(CloseCode.GOING_AWAY, "server shutting down")
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            state.streams.discard(self)
            state.metrics.active.dec()
            self._closed.set()
            self.record.write()

    async def _authenticate(self) -> bool:
        auth = self._state.settings.auth
        key = request_api_key(self._ws.headers, self._ws.query_params)
        admitted = await token_admits(self._state, key, self._ws, self.session_id, self._reject)
        if admitted is not None:
            return admitted
        if not auth.enabled:
            self.record.key(key)
            return True
        if key is None:
            try:
                item = await self._or_stop(
                    wait_within(self._inbox.get(), auth.first_message_timeout_s)
                )
            except asyncio.TimeoutError:
                item = None
            if isinstance(item, ClientGone):
                return False
            if item is not None:
                self._replay.append(item)
                key = first_message_key(item)
        if self._state.api_keys.check(key):
            self.record.key(key)
            return True
        self._state.metrics.rejected.labels("auth").inc()
        message = "missing API key" if key is None else "invalid API key"
        await self._reject(
            f"{message}: send it in the xi-api-key header or as xi_api_key in the first message",
            ErrorCode.INVALID_API_KEY, CloseCode.POLICY_VIOLATION,
        )  # fmt: skip
        return False

    async def _route_and_relay(self, voice_id: str) -> None:
        state = self._state
        loop = asyncio.get_running_loop()
        started = loop.time()
        tried: set[str] = set()
        for _ in range(state.settings.routing.max_attempts):
            if self._client_gone is not None:
                return
            route = await self._or_stop(state.router.route(self.session_id, tried))
            if route is None:
                break
            tried.add(route.entry.id)
            self.record.tried(route.entry.id)
            try:
                done = await self._attempt(route, voice_id, started)
            finally:
                state.registry.release(route.reservation)
            if done:
                return
        state.metrics.rejected.labels("no_capacity").inc()
        await self._reject(
            "no capacity: every balancer is busy or unavailable; try again later",
            ErrorCode.NO_CAPACITY, CloseCode.TRY_AGAIN_LATER,
        )  # fmt: skip

    async def _attempt(self, route: Route, voice_id: str, started: float) -> bool:
        """One balancer; ``True`` when the stream is over, ``False`` to try the next one."""
        state, entry = self._state, route.entry
        backend = await self._connect(route, voice_id)
        if backend is None:
            return False
        state.registry.mark_connected(route.reservation)
        state.metrics.sessions.labels(entry.id).inc()
        if not self._routed:
            self._routed = True
            state.metrics.routing_seconds.observe(asyncio.get_running_loop().time() - started)
        gone, closed = await self._relay(backend)
        if closed is None:
            code = gone.code if gone else 1006
            logger.info(
                "session=%s client closed (%d); closing balancer %s", self.session_id, code,
                entry.id,
            )  # fmt: skip
            if code in SENDABLE:
                await backend.close(code, gone.reason if gone else "")
            else:  # 1005/1006: no code to pass on (always so under Hypercorn, see module doc)
                await backend.close(CloseCode.GOING_AWAY, "client disconnected")
            return True
        await backend.close()
        if closed.failover:
            state.metrics.failovers.labels(f"close_{closed.code}").inc()
            logger.info(
                "session=%s balancer %s closed %d %r before any audio; trying the next",
                self.session_id, entry.id, closed.code, closed.reason,
            )  # fmt: skip
            if closed.code in (1006, 1011):
                state.registry.mark_down(entry.id, f"stream failed with {closed.code}")
            return False
        await self._propagate_close(closed, entry.id)
        return True

    async def _connect(self, route: Route, voice_id: str) -> ClientConnection | None:
        settings, entry = self._state.settings, route.entry
        url, headers = balancer_stream_target(
            entry.registration.base_url, voice_id, self._endpoint, self._ws.url.query,
            secret=settings.cluster.secret.get_secret_value(), session_id=self.session_id,
            api_key=self._ws.headers.get("xi-api-key"),
        )  # fmt: skip
        try:
            return await self._or_stop(
                connect(
                    url, additional_headers=headers, max_size=_BACKEND_MAX_FRAME,
                    open_timeout=settings.routing.connect_timeout_s, max_queue=_INBOX_FRAMES,
                    ping_interval=settings.service.websocket_ping_interval_s,
                )
            )  # fmt: skip
        except InvalidStatus as exc:
            status = exc.response.status_code
            problem = f"handshake refused with HTTP {status}"
            if status not in _BUSY_STATUSES:
                self._state.registry.mark_down(entry.id, problem)
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            problem = f"cannot connect: {' '.join(str(exc).split()) or type(exc).__name__}"
            self._state.registry.mark_down(entry.id, problem)
        self._state.metrics.failovers.labels("connect").inc()
        logger.info(
            "session=%s balancer %s %s; trying the next", self.session_id, entry.id, problem
        )
        return None

    # --- relay tasks ------------------------------------------------------------------------------

    async def _relay(
        self, backend: ClientConnection
    ) -> tuple[ClientGone | None, BackendClosed | None]:
        """Run both directions until one side closes: (client gone, balancer closed), one set.

        A direction whose *other* side fails (a send to a closed socket) returns ``None`` and
        the other direction, which sees that close itself, reports it.
        """
        to_backend = asyncio.create_task(self._client_to_backend(backend))
        to_client = asyncio.create_task(self._backend_to_client(backend))
        stop = asyncio.create_task(self._stop.wait())
        pending: set[asyncio.Task[object]] = {to_backend, to_client, stop}
        gone: ClientGone | None = None
        closed: BackendClosed | None = None
        try:
            while gone is None and closed is None and not (to_backend.done() and to_client.done()):
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    await backend.close(CloseCode.GOING_AWAY, "broker shutting down")
                    raise _StoppedError
                if to_backend in done:
                    gone = to_backend.result()
                if to_client in done:
                    closed = to_client.result()
        finally:
            for task in (to_backend, to_client, stop):
                task.cancel()
            await asyncio.gather(to_backend, to_client, stop, return_exceptions=True)
        return gone, closed

    async def _read_client(self) -> None:
        """Client frames into the bounded inbox, then one :class:`ClientGone`."""
        while True:
            try:
                message = await self._ws.receive()
            except (WebSocketDisconnect, RuntimeError, OSError):
                message = {"type": "websocket.disconnect", "code": 1006}
            if message["type"] == "websocket.disconnect":
                gone = ClientGone(
                    int(message.get("code") or 1005), str(message.get("reason") or "")
                )
                self._client_gone = gone
                if self.record.close_code is None:
                    self.record.close_code = gone.code
                await self._inbox.put(gone)
                return
            text = message.get("text")
            frame = text if text is not None else bytes(message.get("bytes") or b"")
            self.record.from_client(frame)
            await self._inbox.put(frame)

    async def _client_to_backend(self, backend: ClientConnection) -> ClientGone | None:
        """Replay what the client sent so far, then forward until the client leaves."""
        try:
            for frame in list(self._replay):
                await backend.send(frame)
            while True:
                item = await self._inbox.get()
                if isinstance(item, ClientGone):
                    return item
                if not self._committed:
                    self._replay.append(item)
                await backend.send(item)
        except ConnectionClosed:
            return None  # the balancer closed; _backend_to_client reports how

    async def _backend_to_client(self, backend: ClientConnection) -> BackendClosed | None:
        """Forward until the balancer closes; say whether the stream may fail over."""
        try:
            async for frame in backend:
                if not self._committed:
                    if is_no_capacity(frame):
                        continue  # its close (1013) follows; another balancer may have room
                    self._committed = True
                    self._replay.clear()
                self.record.to_client(frame)
                if isinstance(frame, str):
                    await self._ws.send_text(frame)
                else:
                    await self._ws.send_bytes(frame)
        except ConnectionClosed:
            pass
        except (RuntimeError, OSError, WebSocketDisconnect):
            return None  # the client is gone; _client_to_backend reports how
        code = backend.close_code if backend.close_code is not None else 1006
        reason = backend.close_reason or ""
        return BackendClosed(code, reason, not self._committed and code in FAILOVER_CODES)

    # --- closing ----------------------------------------------------------------------------------

    async def _propagate_close(self, closed: BackendClosed, balancer_id: str) -> None:
        logger.info(
            "session=%s balancer %s closed %d %r", self.session_id, balancer_id, closed.code,
            closed.reason,
        )  # fmt: skip
        if closed.code == 1006:  # no close frame: the balancer died or the network failed
            self._state.metrics.rejected.labels("balancer_failed").inc()
            await self._reject(
                "the balancer serving this stream failed; audio may be incomplete",
                ErrorCode.BALANCER_FAILED, CloseCode.INTERNAL_ERROR,
            )  # fmt: skip
            return
        code = CloseCode.NORMAL if closed.code == 1005 else closed.code
        await self._close_client(sendable(code, CloseCode.INTERNAL_ERROR), closed.reason)

    async def _reject(self, message: str, error: ErrorCode, code: int) -> None:
        """Send ``{"message", "error", "code"}``, then close with ``code``."""
        self.record.refused(error.value)
        if self._client_open():
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                await self._ws.send_text(
                    ErrorMessage(message=message, error=error.value, code=code).to_json()
                )
        await self._close_client(code, close_reason(message))

    async def _close_client(self, code: int, reason: str) -> None:
        if self._client_open():
            self.record.close_code = int(code)
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                await self._ws.close(code, close_reason(reason))

    def _client_open(self) -> bool:
        return self._client_gone is None and self._ws.application_state is WebSocketState.CONNECTED

    async def _or_stop(self, awaitable: Awaitable[_T]) -> _T:
        """``await awaitable``, unless the broker stops this stream first (:class:`_StoppedError`)."""
        task = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            stop.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise _StoppedError
