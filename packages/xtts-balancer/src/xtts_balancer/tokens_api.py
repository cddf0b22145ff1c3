"""``POST /v1/single-use-token/tts_websocket``: a token a browser opens one websocket with.

The SDK's ``tokens.single_use.create("tts_websocket")``: a caller holding an API key gets
``{"token": "…"}`` (ElevenLabs' ``SingleUseTokenResponseModel``), and a websocket that names it in
its query (``?single_use_token=…``) is admitted without a key, once, within
``auth.single_use_token_ttl_s`` (:class:`xtts_core.single_use.SingleUseTokens`;
:meth:`~xtts_balancer.session.SpeechSession.admit` takes it). The socket counts against the
minting key's ``auth.max_sessions_per_key``. Tokens live in this balancer's memory: behind a
broker the broker mints and checks them instead (it never relays this endpoint).
"""

from __future__ import annotations

import logging

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from xtts_balancer.http_common import ApiError, check_caller
from xtts_balancer.state import balancer_state
from xtts_core.protocol import ErrorCode, request_api_key

__all__ = ["SingleUseTokenResponse", "create_single_use_token"]

logger = logging.getLogger(__name__)


class SingleUseTokenResponse(BaseModel):
    """ElevenLabs' ``SingleUseTokenResponseModel``."""

    token: str


async def create_single_use_token(request: Request) -> Response:
    """``POST /v1/single-use-token/tts_websocket`` (see the module docstring)."""
    check_caller(request)  # a valid key, or in broker mode the broker's signature
    state = balancer_state(request)
    if state.broker is not None:
        raise ApiError(
            ErrorCode.INVALID_REQUEST,
            "This balancer is broker-managed: the broker mints the single-use tokens.",
            status_code=403,
        )
    identity = state.auth.check(request_api_key(request.headers, request.query_params))
    token = state.single_use_tokens.mint(identity)
    logger.info("request=%s single-use token minted", request.state.request_id)
    return JSONResponse(SingleUseTokenResponse(token=token).model_dump(mode="json"))
