"""What every HTTP API endpoint shares: ElevenLabs-shaped errors and the caller's admission.

Errors are raised as :class:`ApiError` and rendered by :func:`api_error_response` (registered on
the app): ``{"detail": {"status": "<code>", "message": "<text>"}}`` as ElevenLabs answers a bad
key or an unknown voice, and FastAPI's ``{"detail": [{"loc", "msg", "type"}]}`` for validation
failures (422), which is what ElevenLabs' OpenAPI declares (elevenlabs-protocol.md §4.1).
:func:`admit` applies the websocket's rules to a request: refused while draining, then the
broker's signature in broker mode, else an API key (header or query, §1.2) with the per-key
session limit. A :class:`~xtts_balancer.errors.SessionError` from the shared machinery maps to
the HTTP status with :meth:`ApiError.from_session`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from xtts_balancer.auth import key_from_request
from xtts_balancer.errors import BalancerError, SessionError
from xtts_balancer.jobs import admit_key
from xtts_balancer.state import BalancerState, balancer_state
from xtts_core.cluster import OriginError, verify_request
from xtts_core.protocol import ErrorCode


__all__ = [
    "ApiError",
    "ErrorDetail",
    "ErrorResponse",
    "ValidationErrorItem",
    "ValidationErrorResponse",
    "admit",
    "api_error_response",
    "check_caller",
    "parse_model",
]

#: HTTP status per ``error`` code of the shared machinery.
_STATUS = {
    ErrorCode.INVALID_API_KEY.value: 401,
    ErrorCode.VOICE_NOT_FOUND.value: 404,
    ErrorCode.INVALID_MESSAGE.value: 422,
    ErrorCode.UNSUPPORTED_OUTPUT_FORMAT.value: 422,
    BalancerError.TOO_MANY_SESSIONS.value: 429,
    BalancerError.SERVER_BUSY.value: 429,
    BalancerError.TEXT_TOO_LONG.value: 422,
    BalancerError.SHUTTING_DOWN.value: 503,
}


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


class ApiError(Exception):
    """An HTTP error answer: ``status_code`` with ``detail`` (see the module docstring)."""

    def __init__(self, status_code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body: BaseModel = ErrorResponse(detail=ErrorDetail(status=status, message=message))

    @classmethod
    def validation(cls, items: Sequence[ValidationErrorItem]) -> ApiError:
        error = cls(422, "invalid_request", "; ".join(item.msg for item in items))
        error.body = ValidationErrorResponse(detail=list(items))
        return error

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
        return cls(_STATUS.get(exc.error, 500), exc.error, exc.message)


async def api_error_response(request: Request, exc: Exception) -> Response:
    """The app's handler for :class:`ApiError`."""
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body.model_dump(mode="json"), status_code=exc.status_code)


def admit(request: Request) -> str | None:
    """Admit a speech request (see the module docstring): the key's identity, whose session
    count the caller gives back with ``state.key_sessions[identity] -= 1``; ``None`` in broker
    mode.

    Raises:
        ApiError: 503 while draining, 403 without a valid broker signature, 401 without a
            valid key, 429 over the key's session limit.
    """
    state = balancer_state(request)
    if state.draining:
        raise ApiError(503, BalancerError.SHUTTING_DOWN.value, "The server is shutting down.")
    if state.broker is not None:
        _verify_broker(request, state)
        return None
    try:
        return admit_key(state, key_from_request(request.headers, request.query_params))
    except SessionError as exc:
        raise ApiError.from_session(exc) from None


def check_caller(request: Request) -> None:
    """:func:`admit` for requests that hold no session (listings, voice management)."""
    state = balancer_state(request)
    if state.broker is not None:
        _verify_broker(request, state)
        return
    try:
        state.auth.check(key_from_request(request.headers, request.query_params))
    except SessionError as exc:
        raise ApiError.from_session(exc) from None


def _verify_broker(request: Request, state: BalancerState) -> None:
    cluster = state.settings.cluster
    assert cluster.secret is not None
    try:
        session_id = verify_request(
            cluster.secret.get_secret_value(), request.method, request.url.path,
            request.headers, max_skew_s=cluster.max_clock_skew_s,
        )  # fmt: skip
        state.replay_guard.claim(session_id)
    except OriginError as exc:
        raise ApiError(
            403, ErrorCode.INVALID_API_KEY.value,
            f"This balancer is broker-managed; connect through the broker ({exc}).",
        ) from None  # fmt: skip


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], data: object, prefix: str) -> M:
    """``model`` validated from ``data`` (a mapping); 422 naming the field otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError.from_pydantic(exc, prefix) from None
