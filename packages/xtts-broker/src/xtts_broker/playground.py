"""The balancers' playground page at the broker's address: its files relayed, its config answered.

The page belongs to the balancer (``xtts_balancer.playground``, switched by the balancers'
``playground.enabled``). The broker serves it at the same paths so a person reaches it at the
cluster's one address, and the page's API calls and websocket then come to the broker like any
client's, with the key checked here:

- ``GET /playground/{name}`` is fetched from the first healthy balancer that answers (no client
  header is passed on: the files are public) and relayed with its status and the page's headers
  (media type, Content-Security-Policy); 503 ``no_balancer`` when none answers.
- ``GET /playground/config.json`` is answered here, since what the page must know is whether
  **the broker** wants a key.
- ``/`` and ``/playground`` redirect to ``/playground/``.
"""

from __future__ import annotations

import logging
from typing import Final

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from xtts_broker.state import BrokerState
from xtts_core.protocol import ErrorCode, error_body, http_status

__all__ = ["playground_routes"]

logger = logging.getLogger(__name__)

#: The balancer's answer headers that describe the page (everything else stays behind).
_RELAYED: Final = (
    "content-type",
    "content-security-policy",
    "x-content-type-options",
    "referrer-policy",
    "cache-control",
)


def playground_routes() -> list[BaseRoute]:
    """The broker's playground routes (module docstring)."""
    return [
        Route("/", _to_page, methods=["GET", "HEAD"]),
        Route("/playground", _to_page, methods=["GET", "HEAD"]),
        Route("/playground/", _page_file, methods=["GET"]),
        Route("/playground/config.json", _config, methods=["GET"]),
        Route("/playground/{name}", _page_file, methods=["GET"]),
    ]


async def _to_page(request: Request) -> Response:
    return RedirectResponse("/playground/", status_code=307)


async def _config(request: Request) -> Response:
    auth = _state(request).settings.auth
    return JSONResponse({"auth_required": auth.enabled}, headers={"Cache-Control": "no-store"})


async def _page_file(request: Request) -> Response:
    state = _state(request)
    routing = state.settings.routing
    timeout = httpx.Timeout(routing.read_timeout_s, connect=routing.connect_timeout_s)
    path = "/playground/" + request.path_params.get("name", "")
    for entry in state.registry.routable()[: routing.max_attempts]:
        try:
            answer = await state.http.get(entry.registration.base_url + path, timeout=timeout)
        except httpx.TransportError as exc:
            logger.info("playground file %s from balancer %s failed: %s", path, entry.id, exc)
            continue
        headers = {name: answer.headers[name] for name in _RELAYED if name in answer.headers}
        return Response(answer.content, answer.status_code, headers=headers)
    error = ErrorCode.NO_BALANCER
    message = "No balancer is available to serve the playground; try again later."
    return JSONResponse(error_body(error, message), status_code=http_status(error.value))


def _state(request: Request) -> BrokerState:
    state: BrokerState = request.app.state.broker
    return state
