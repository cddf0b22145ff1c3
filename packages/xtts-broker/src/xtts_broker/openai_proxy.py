"""OpenAI's speech API through the broker: ``POST /v1/audio/speech`` and ``GET /v1/audio/models``.

The speech route is relayed exactly as the ElevenLabs speech routes are
(:func:`xtts_broker.http_proxy.speech`: auth at the broker, routing, a slot reserved for the whole
answer, failover until the balancer's status line, metrics, the drain), and the listing as the
other listings (:func:`~xtts_broker.http_proxy.listing`). What the balancer answers is relayed
as it came (on these routes the balancer already answers OpenAI's shapes); the broker's own
refusals (no valid key, every balancer busy, none available, a body too large, draining) are
turned into OpenAI's error body (:func:`xtts_core.protocol.openai_error_body`) with the same
status, so an ``openai`` SDK raises its typed exception for them too.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from xtts_broker.http_proxy import listing, speech
from xtts_core.protocol import openai_error_body

__all__ = ["openai_routes"]


def _in_openai_shape(answer: Response) -> Response:
    """``answer`` with an ElevenLabs error body (``{"detail": {"status", "message"}}``) rewritten
    in OpenAI's shape; any other answer unchanged."""
    if answer.status_code < 400 or not isinstance(answer, JSONResponse):
        return answer
    try:
        detail = json.loads(bytes(answer.body))["detail"]
        code, message = str(detail["status"]), str(detail["message"])
    except (ValueError, KeyError, TypeError):
        return answer
    body = openai_error_body(code, message, status=answer.status_code)
    return JSONResponse(body, status_code=answer.status_code)


async def audio_speech(request: Request) -> ASGIApp:
    """``POST /v1/audio/speech``: relayed with failover (see the module docstring)."""
    answer = await speech(request)
    return answer if not isinstance(answer, Response) else _in_openai_shape(answer)


async def audio_models(request: Request) -> Response:
    """``GET /v1/audio/models``: any healthy balancer answers."""
    return _in_openai_shape(await listing(request))


def openai_routes() -> list[Route]:
    """The broker's routes for the OpenAI speech API."""
    return [
        Route("/v1/audio/speech", audio_speech, methods=["POST"]),
        Route("/v1/audio/models", audio_models, methods=["GET"]),
    ]
