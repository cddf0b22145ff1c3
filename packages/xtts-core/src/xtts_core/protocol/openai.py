"""OpenAI's error body for the OpenAI speech API, shared by the balancer and the broker.

Every refusal on ``POST /v1/audio/speech`` is ``{"error": {"message", "type", "param", "code"}}``,
the shape the ``openai`` SDKs turn into their typed exceptions (chosen by the HTTP status:
``AuthenticationError`` for 401, ``BadRequestError`` for 400, ``RateLimitError`` for 429, ...).
``code`` is our :class:`~xtts_core.protocol.ErrorCode` value and the status is
:func:`~xtts_core.protocol.http_status` of it, except where OpenAI answers differently: an
unknown voice is 400 (ElevenLabs: 404), a failed validation 400 (ElevenLabs: 422). ``type``
follows the status as OpenAI names it (docs/protocol.md §4.6).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from xtts_core.protocol.codes import ErrorCode, http_status

__all__ = [
    "OpenAIError",
    "OpenAIErrorResponse",
    "openai_error",
    "openai_error_body",
    "openai_status",
]

#: Statuses OpenAI answers where ours differ (everything else keeps :func:`http_status`).
_OPENAI_STATUS = {
    ErrorCode.VOICE_NOT_FOUND.value: 400,
    ErrorCode.INVALID_REQUEST.value: 400,
    ErrorCode.INVALID_MESSAGE.value: 400,
    ErrorCode.UNSUPPORTED_OUTPUT_FORMAT.value: 400,
}


class OpenAIError(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorResponse(BaseModel):
    """OpenAI's error body."""

    error: OpenAIError


def openai_status(error: ErrorCode | str) -> int:
    """The HTTP status OpenAI's API would answer ``error`` with."""
    code = error.value if isinstance(error, ErrorCode) else error
    return _OPENAI_STATUS.get(code) or http_status(code)


def _error_type(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_error(
    error: ErrorCode | str, message: str, param: str | None = None, status: int | None = None
) -> OpenAIErrorResponse:
    """An OpenAI-shaped error answer's body (its status: ``status``, else :func:`openai_status`)."""
    code = error.value if isinstance(error, ErrorCode) else error
    kind = _error_type(status or openai_status(code))
    return OpenAIErrorResponse(
        error=OpenAIError(message=message, type=kind, param=param, code=code)
    )


def openai_error_body(
    error: ErrorCode | str, message: str, param: str | None = None, status: int | None = None
) -> dict[str, Any]:
    """:func:`openai_error` as JSON."""
    return openai_error(error, message, param, status).model_dump(mode="json")
