"""A small stand-in for xtts-balancer that speaks the broker contract, for the broker's tests.

It is a real Starlette app served by Hypercorn on 127.0.0.1 and does what a balancer in broker
mode must do: register with the broker, heartbeat its capacity (registering again when the broker
answers 404), deregister, serve ``GET /workers/idle``, and serve the stream-input websocket only
to requests carrying the broker's proof of origin (:func:`xtts_core.cluster.verify_request`, with
a :class:`~xtts_core.cluster.ReplayGuard`). Streams answer deterministically: each text message
becomes one audio message whose bytes are ``<balancer id>:<text>``; ``{"text": ""}`` ends with
``isFinal`` and close 1000. Text commands drive failure cases:

- ``CLOSE <code> <reason>``: close the stream with that code and reason;
- ``mode="refuse"``: answer the first message with the "no capacity" error and close 1013;
- ``mode="fail"``: close 1011 on the first text, as a balancer whose worker died.

It records what the tests assert on: session ids, peak concurrent streams, the close code each
stream got from the broker, and ``/workers/idle`` probes (whose delay and status tests can set).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from typing import Literal

import httpx
from broker_servers import serve_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from xtts_core.cluster import (
    DEREGISTER_PATH,
    HEARTBEAT_PATH,
    REGISTER_PATH,
    BalancerHeartbeat,
    BalancerRegistration,
    OriginError,
    ReplayGuard,
    sign_request,
    verify_request,
)
from xtts_core.protocol import AudioOutput, ErrorMessage, FinalOutput

Mode = Literal["normal", "refuse", "fail"]


def audio_bytes(balancer_id: str, text: str) -> bytes:
    """What the fake balancer streams for ``text``: tests decode and compare it."""
    return f"{balancer_id}:{text}".encode()


class FakeBalancer:
    """One fake balancer; use :meth:`running` to serve it and register it with a broker."""

    def __init__(
        self, balancer_id: str, secret: str, *, slots: int = 2, mode: Mode = "normal"
    ) -> None:
        self.id = balancer_id
        self.secret = secret
        self.slots = slots
        self.mode = mode
        self.port = 0
        self.busy = 0
        self.peak = 0
        self.streams_served = 0
        self.session_ids: list[str] = []
        self.client_closes: list[int] = []
        self.rejected_origins: list[str] = []
        self.probes = 0
        self.probe_delay_s = 0.0
        self.probe_status = 200
        self._replays = ReplayGuard()
        self.app = Starlette(
            routes=[
                Route("/workers/idle", self._idle, methods=["GET"]),
                WebSocketRoute("/v1/text-to-speech/{voice_id}/stream-input", self._stream),
                WebSocketRoute("/v1/text-to-speech/{voice_id}/multi-stream-input", self._stream),
            ]
        )

    @property
    def idle(self) -> int:
        return max(0, self.slots - self.busy)

    # --- the balancer's side of the cluster contract ------------------------------------------

    def registration(self) -> BalancerRegistration:
        return BalancerRegistration(
            id=self.id, host="127.0.0.1", port=self.port, capacity=self.slots, idle=self.idle
        )

    async def _post(self, broker: str, path: str, body: bytes) -> httpx.Response:
        headers = sign_request(
            self.secret, "POST", path, session_id=secrets.token_hex(8), body=body
        )
        headers["content-type"] = "application/json"
        async with httpx.AsyncClient() as http:
            return await http.post(broker + path, content=body, headers=headers)

    async def register(self, broker: str) -> httpx.Response:
        return await self._post(
            broker, REGISTER_PATH, self.registration().model_dump_json().encode()
        )

    async def heartbeat(self, broker: str) -> httpx.Response:
        """One heartbeat; registers again when the broker does not know this balancer."""
        beat = BalancerHeartbeat(id=self.id, idle=self.idle, capacity=self.slots)
        response = await self._post(broker, HEARTBEAT_PATH, beat.model_dump_json().encode())
        if response.status_code == 404:
            response = await self.register(broker)
        return response

    async def deregister(self, broker: str) -> httpx.Response:
        return await self._post(broker, DEREGISTER_PATH, json.dumps({"id": self.id}).encode())

    async def _heartbeats(self, broker: str, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            with contextlib.suppress(httpx.HTTPError):
                await self.heartbeat(broker)

    @contextlib.asynccontextmanager
    async def running(
        self, broker: str | None = None, *, heartbeat_s: float | None = None
    ) -> AsyncIterator[FakeBalancer]:
        """Serve; with ``broker``, register (and heartbeat every ``heartbeat_s``), then
        deregister on exit."""
        async with serve_app(self.app) as port:
            self.port = port
            beats: asyncio.Task[None] | None = None
            if broker is not None:
                (await self.register(broker)).raise_for_status()
                if heartbeat_s is not None:
                    beats = asyncio.create_task(self._heartbeats(broker, heartbeat_s))
            try:
                yield self
            finally:
                if beats is not None:
                    beats.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await beats
                if broker is not None:
                    with contextlib.suppress(httpx.HTTPError):
                        await self.deregister(broker)

    # --- endpoints ----------------------------------------------------------------------------

    async def _idle(self, request: Request) -> JSONResponse:
        self.probes += 1
        await asyncio.sleep(self.probe_delay_s)
        return JSONResponse({"idle_workers": self.idle}, status_code=self.probe_status)

    async def _stream(self, websocket: WebSocket) -> None:
        try:
            path = websocket.scope["path"]  # decoded; url.path mangles a "?" in the voice id
            session_id = verify_request(self.secret, "GET", path, websocket.headers)
            self._replays.claim(session_id)
        except OriginError as exc:
            self.rejected_origins.append(str(exc))
            await websocket.close(1008)  # before accept: an HTTP 403 at the handshake
            return
        self.session_ids.append(session_id)
        await websocket.accept()
        if self.mode == "refuse" or self.busy >= self.slots:
            await websocket.receive()
            error = ErrorMessage(message="no free worker", error="no_capacity", code=1013)
            await websocket.send_text(error.to_json())
            await websocket.close(1013, "no free worker")
            return
        self.busy += 1
        self.peak = max(self.peak, self.busy)
        self.streams_served += 1
        try:
            if self.mode == "fail":
                await websocket.receive()
                await websocket.close(1011, "worker died")
                return
            await self._serve_stream(websocket)
        finally:
            self.busy -= 1

    async def _serve_stream(self, websocket: WebSocket) -> None:
        while True:
            try:
                text = json.loads(await websocket.receive_text()).get("text")
            except WebSocketDisconnect as exc:
                self.client_closes.append(exc.code)
                return
            if text == "":
                await websocket.send_text(FinalOutput().to_json())
                await websocket.close(1000)
                return
            if text.startswith("CLOSE "):
                _, code, reason = text.split(" ", 2)
                await websocket.close(int(code), reason)
                return
            if text.strip():
                audio = base64.b64encode(audio_bytes(self.id, text)).decode()
                await websocket.send_text(AudioOutput(audio=audio).to_json())
