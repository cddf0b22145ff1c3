"""The HTTP API's error bodies, shared by the balancer and the broker (§4.4).

Every refusal is ``{"detail": {"status": "<error code>", "message": "<one line>"}}``, the shape
ElevenLabs answers a bad key or an unknown voice with, which the official SDK turns into its
``ApiError``; ``status`` is an :class:`~xtts_core.protocol.ErrorCode` and the HTTP status is
:func:`~xtts_core.protocol.http_status` of it. A failed validation is FastAPI's
``{"detail": [{"loc", "msg", "type"}]}`` with 422, as ElevenLabs' OpenAPI declares.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from xtts_core.protocol.codes import ErrorCode

__all__ = [
    "ErrorDetail",
    "ErrorResponse",
    "ValidationErrorItem",
    "ValidationErrorResponse",
    "error_body",
]


class ErrorDetail(BaseModel):
    """``detail`` of an error that is not a validation failure."""

    status: str
    message: str


class ErrorResponse(BaseModel):
    detail: ErrorDetail


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    """422: what was wrong, field by field (ElevenLabs' ``HTTPValidationError``)."""

    detail: list[ValidationErrorItem]


def error_body(error: ErrorCode | str, message: str) -> dict[str, Any]:
    """The JSON body of an HTTP error answer (see the module docstring)."""
    status = error.value if isinstance(error, ErrorCode) else error
    return ErrorResponse(detail=ErrorDetail(status=status, message=message)).model_dump(mode="json")
