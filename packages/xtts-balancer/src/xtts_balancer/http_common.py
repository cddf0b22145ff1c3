"""What every HTTP API endpoint shares: ElevenLabs-shaped errors and the caller's admission.

Errors are raised as :class:`ApiError` and rendered by :func:`api_error_response` (registered on
the app) in the protocol's error bodies (:mod:`xtts_core.protocol.http`, docs/protocol.md §4.4):
``{"detail": {"status": "<code>", "message": "<text>"}}``, or the field-by-field 422 of a failed
validation.
:func:`check_caller` admits a request that holds no session; speech requests are admitted by
their :class:`~xtts_balancer.session.SpeechSession`. A
:class:`~xtts_balancer.errors.SessionError` maps to its HTTP status with
:meth:`ApiError.from_session`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from xtts_balancer.errors import SessionError
from xtts_balancer.session import verify_origin
from xtts_balancer.state import balancer_state
from xtts_core.protocol import (
    ErrorCode,
    ErrorDetail,
    ErrorResponse,
    ValidationErrorItem,
    ValidationErrorResponse,
    http_status,
    request_api_key,
)

__all__ = [
    "ApiError",
    "api_error_response",
    "check_caller",
    "parse_model",
]


class ApiError(Exception):
    """An HTTP error answer: ``status_code`` with the protocol's error body (§4.4)."""

    def __init__(
        self, error: ErrorCode | str, message: str, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        code = error.value if isinstance(error, ErrorCode) else error
        self.error = code
        self.message = message
        self.status_code = status_code or http_status(code)
        self.body: BaseModel = ErrorResponse(detail=ErrorDetail(status=code, message=message))

    @classmethod
    def validation(cls, items: Sequence[ValidationErrorItem]) -> ApiError:
        error = cls(ErrorCode.INVALID_REQUEST, "; ".join(item.msg for item in items))
        error.body = ValidationErrorResponse(detail=list(items))
        return error

    @classmethod
    def invalid(cls, loc: list[str | int], msg: str) -> ApiError:
        """422 for one field (``loc``, e.g. ``["body", "files"]``) and why it was refused."""
        return cls.validation([ValidationErrorItem(loc=loc, msg=msg, type="value_error")])

    @classmethod
    def from_pydantic(cls, exc: ValidationError, prefix: str) -> ApiError:
        """422 for a failed body (``prefix="body"``) or query (``"query"``) validation."""
        return cls.validation(
            [
                ValidationErrorItem(
                    loc=[prefix, *err["loc"]],
                    msg=str(err["msg"]).removeprefix("Value error, "),
                    type=err["type"],
                )
                for err in exc.errors(include_url=False)
            ]
        )

    @classmethod
    def from_session(cls, exc: SessionError) -> ApiError:
        return cls(exc.error, exc.message, exc.status)

    @classmethod
    def from_refusal(cls, exc: SessionError | ApiError) -> ApiError:
        """``exc`` as an answer: a :class:`SessionError` in its HTTP form, an ``ApiError`` as it
        is."""
        return cls.from_session(exc) if isinstance(exc, SessionError) else exc


async def api_error_response(request: Request, exc: Exception) -> Response:
    """The app's handler for :class:`ApiError`."""
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body.model_dump(mode="json"), status_code=exc.status_code)


def check_caller(request: Request) -> None:
    """Admit a request that holds no session (listings, voice management): the broker's
    signature in broker mode, else a valid API key (docs/protocol.md §1.2)."""
    state = balancer_state(request)
    try:
        if state.broker is not None:
            verify_origin(state, request.method, request.url.path, request.headers)
        else:
            state.auth.check(request_api_key(request.headers, request.query_params))
    except SessionError as exc:
        raise ApiError.from_session(exc) from None


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], data: object, prefix: str) -> M:
    """``model`` validated from ``data`` (a mapping); 422 naming the field otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError.from_pydantic(exc, prefix) from None
