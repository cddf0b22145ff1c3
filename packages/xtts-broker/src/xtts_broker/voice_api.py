"""Voice management through the broker: ``POST /v1/voices/add`` and ``DELETE /v1/voices/{id}``.

A voice added through any broker is added on every routable balancer, and a delete deletes it
on every one; :mod:`xtts_broker.voice_sync` then brings the balancers that were away (or busy,
or registered later) to the same state.

- **Add**: the client's key is checked here (:func:`~xtts_broker.http_proxy` rules), the body is
  read up to ``voices.max_upload_bytes`` (413 beyond), and relayed, signed, to one routable
  balancer; its answer is the client's. A bad upload is refused there (422, 413) and goes no
  further. Once one balancer has stored the voice, the same body goes to every other routable
  balancer at once, so a client may speak the voice through any balancer when the answer comes.
  Voice ids are content-addressed (:mod:`xtts_core.cluster_voices`), so every balancer answers
  the same id; a balancer that answered another (an older version) is logged.
- **Delete**: relayed to every routable balancer at once; 200 when any deleted it (each of them
  leaves a tombstone, which the voice sync spreads, so the voice cannot come back from a
  balancer that was away), else the first balancer's refusal (404 ``voice_not_found``, or 400
  for a voice from a balancer's own configuration).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from xtts_broker.http_proxy import _answer, _body, _error, _refusal, _state
from xtts_broker.registry import BalancerEntry
from xtts_broker.state import BrokerState
from xtts_core.protocol import ErrorCode

__all__ = ["voice_routes"]

logger = logging.getLogger(__name__)


def _unavailable() -> Response:
    return _error(ErrorCode.NO_BALANCER, "No balancer is available; try again later.")


async def _upload(request: Request, limit: int) -> bytes | Response:
    """The request body, or the 411/413 refusal (checked before and while it is read)."""
    length = request.headers.get("content-length")
    if length is None:
        return _error(ErrorCode.LENGTH_REQUIRED, "Send the upload with a Content-Length.")
    too_large = f"The upload is larger than {limit} bytes."
    if not length.isdigit() or int(length) > limit:
        return _error(ErrorCode.PAYLOAD_TOO_LARGE, too_large)
    return await _body(request, limit, too_large)


def _voice_id(reply: Response) -> str | None:
    try:
        voice_id = json.loads(bytes(reply.body)).get("voice_id")
    except (ValueError, AttributeError):
        return None
    return voice_id if isinstance(voice_id, str) else None


async def add_voice(request: Request) -> Response:
    """``POST /v1/voices/add`` (module docstring)."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    state = _state(request)
    body = await _upload(request, state.settings.voices.max_upload_bytes)
    if isinstance(body, Response):
        return body
    session_id = secrets.token_hex(8)
    targets = state.registry.routable()
    for index, entry in enumerate(targets):
        reply = await _answer(state, entry, request, body, session_id)
        if reply is None:
            continue
        voice_id = _voice_id(reply) if reply.status_code == 200 else None
        if voice_id is None:
            return reply  # the balancer refused the upload: nothing was stored anywhere
        logger.info("session=%s voice %s added on %s", session_id, voice_id, entry.id)
        await _add_elsewhere(state, request, body, session_id, voice_id, targets[index + 1 :])
        if state.voice_sync is not None:
            state.voice_sync.kick()  # balancers that missed it get it from this one
        return reply
    return _unavailable()


async def _add_elsewhere(
    state: BrokerState, request: Request, body: bytes, session_id: str, voice_id: str,
    others: list[BalancerEntry],
) -> None:  # fmt: skip
    replies = await asyncio.gather(
        *(_answer(state, entry, request, body, session_id) for entry in others)
    )
    for entry, reply in zip(others, replies, strict=True):
        got = None if reply is None or reply.status_code != 200 else _voice_id(reply)
        if got != voice_id:
            logger.warning(
                "session=%s balancer %s answered %s for voice %s; the voice sync copies it",
                session_id, entry.id, got or (reply and reply.status_code), voice_id,
            )  # fmt: skip


async def delete_voice(request: Request) -> Response:
    """``DELETE /v1/voices/{voice_id}`` (module docstring)."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    state = _state(request)
    session_id = secrets.token_hex(8)
    targets = state.registry.routable()
    replies = await asyncio.gather(
        *(_answer(state, entry, request, b"", session_id) for entry in targets)
    )
    answered = [reply for reply in replies if reply is not None]
    if not answered:
        return _unavailable()
    voice_id = request.path_params["voice_id"]
    deleted = [e.id for e, r in zip(targets, replies, strict=True) if r and r.status_code == 200]
    if not deleted:
        return answered[0]
    logger.info("session=%s voice %s deleted on %s", session_id, voice_id, ", ".join(deleted))
    if state.voice_sync is not None:
        state.voice_sync.kick()  # the tombstones reach the balancers that did not have it
    return JSONResponse({"status": "ok"})


def voice_routes() -> list[Route]:
    """The broker's voice-management routes."""
    return [
        Route("/v1/voices/add", add_voice, methods=["POST"]),
        Route("/v1/voices/{voice_id}", delete_voice, methods=["DELETE"]),
    ]
