"""Protection of the operational endpoints: an admin key, a separate admin listener, or both.

``GET /metrics`` and ``GET /workers`` tell a stranger how busy the host is, which devices and
process ids it runs and how often workers died, so ``admin.key_hashes`` puts them behind a key
(``Authorization: Bearer KEY`` — what Prometheus' ``authorization`` scrape setting sends — or
``xi-api-key``; hashed and compared in constant time like the API keys). ``GET /health``,
``GET /ready`` and ``GET /workers/idle`` stay open: load balancers, orchestrators and the
original broker poll them without credentials, and they reveal nothing beyond "up" and a count.

With ``admin.port`` set, Hypercorn listens there too, and :class:`AdminGate` tells the
listeners apart by the local port of each connection: the admin listener serves only the
operational endpoints (everything else is 404 there), and the public one no longer serves
``/metrics`` and ``/workers`` at all (404), so they can be kept off the public network. The key,
when configured, is required on whichever listener serves them.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from xtts_balancer.settings import AdminSection
from xtts_core.cluster import ApiKeys
from xtts_core.protocol import request_api_key

__all__ = ["OPEN_PATHS", "PROTECTED_PATHS", "AdminGate"]

#: Polled by load balancers and the original broker: never behind the admin key.
OPEN_PATHS = frozenset({"/health", "/ready", "/workers/idle"})
#: Operational details: behind the admin key, and only on the admin listener when there is one.
PROTECTED_PATHS = frozenset({"/metrics", "/workers"})


class AdminGate:
    """ASGI middleware enforcing ``admin:`` (see the module docstring) in front of the app."""

    def __init__(self, app: ASGIApp, admin: AdminSection) -> None:
        self.app = app
        self._port = admin.port
        self._keys = ApiKeys(admin.key_hashes) if admin.key_hashes else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        server = scope.get("server")
        on_admin = self._port is not None and server is not None and server[1] == self._port
        if on_admin and path not in OPEN_PATHS | PROTECTED_PATHS:
            await _refuse(scope, receive, send, 404, "not_found", "Not an operational endpoint.")
        elif path in PROTECTED_PATHS and self._port is not None and not on_admin:
            await _refuse(scope, receive, send, 404, "not_found", "Not found.")
        elif path in PROTECTED_PATHS and not self._authorised(scope):
            await _refuse(
                scope, receive, send, 401, "invalid_api_key",
                "This endpoint needs the admin key (Authorization: Bearer KEY).",
            )  # fmt: skip
        else:
            await self.app(scope, receive, send)

    def _authorised(self, scope: Scope) -> bool:
        if self._keys is None:
            return True
        key = request_api_key(Headers(scope=scope), {})  # headers only: URLs end up in logs
        return key is not None and self._keys.check(key)


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, error: str, message: str
) -> None:
    """An ElevenLabs-style error body (``{"detail": {"status", "message"}}``), or a refused
    websocket handshake."""
    if scope["type"] == "websocket":
        await WebSocketClose(code=1008)(scope, receive, send)
        return
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"detail": {"status": error, "message": message}}
    await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)
