"""Single-use tokens at the broker: ``POST /v1/single-use-token/tts_websocket`` and the websockets.

The broker mints the tokens (:func:`single_use_token`) and checks them
itself, in its own memory (:class:`xtts_core.single_use.SingleUseTokens`), before a stream is
routed: which balancer will serve a socket is not known when its token is minted, so a token
opens one websocket at the broker that minted it. A socket with a key in its handshake is
admitted by the key; one with only a token by the token, even with ``auth.enabled: false``, so a
token is never valid twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.websockets import WebSocket

from xtts_broker.http_proxy import _refusal, _state
from xtts_broker.state import BrokerState
from xtts_core.protocol import CloseCode, ErrorCode
from xtts_core.single_use import SINGLE_USE_TOKEN_PARAM

__all__ = ["TOKEN_REFUSED", "single_use_token", "token_admits", "token_routes"]

logger = logging.getLogger(__name__)

#: The error message for a token that admits nothing.
TOKEN_REFUSED: Final = "The single-use token is unknown, expired or already used."


async def token_admits(
    state: BrokerState, key: str | None, websocket: WebSocket, session_id: str,
    reject: Callable[[str, ErrorCode, int], Awaitable[None]],
) -> bool | None:  # fmt: skip
    """``None`` when the handshake sent a ``key`` or no token; else whether its token admits
    the socket (which uses it up). A refused token is counted, logged with ``session_id`` and
    answered with ``reject`` (``invalid_api_key``, close 1008)."""
    token = websocket.query_params.get(SINGLE_USE_TOKEN_PARAM)
    if key is not None or token is None:
        return None
    if state.single_use_tokens.consume(token) is not None:
        return True
    state.metrics.rejected.labels("auth").inc()
    logger.info("session=%s rejected: %s", session_id, TOKEN_REFUSED)
    await reject(TOKEN_REFUSED, ErrorCode.INVALID_API_KEY, CloseCode.POLICY_VIOLATION)
    return False


async def single_use_token(request: Request) -> Response:
    """``POST /v1/single-use-token/tts_websocket``: minted here, for a valid key, and checked by
    this broker's websockets (:class:`xtts_core.single_use.SingleUseTokens`); never relayed,
    since the balancer a socket is routed to is not known when the token is minted."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    token = _state(request).single_use_tokens.mint("broker")
    logger.info("session=%s single-use token minted", request.state.request_id)
    return JSONResponse({"token": token})


def token_routes() -> list[Route]:
    """The broker's route that mints single-use tokens."""
    return [Route("/v1/single-use-token/tts_websocket", single_use_token, methods=["POST"])]
