"""What every HTTP API endpoint shares: ElevenLabs-shaped errors and the caller's admission.

Errors are raised as :class:`ApiError` and rendered by :func:`api_error_response` (registered on
the app) in the protocol's error bodies (:mod:`xtts_core.protocol.http`, docs/protocol.md §4.4):
``{"detail": {"status": "<code>", "message": "<text>"}}``, or the field-by-field 422 of a failed
validation.
:func:`admit` applies the websocket's rules to a request: refused while draining, then the
broker's signature in broker mode, else an API key (header or query, docs/protocol.md §1.2) with the per-key
session limit. A :class:`~xtts_balancer.errors.SessionError` from the shared machinery maps to
the HTTP status with :meth:`ApiError.from_session`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from xtts_balancer.errors import SessionError
from xtts_balancer.jobs import admit_key
from xtts_balancer.state import BalancerState, balancer_state
from xtts_core.cluster import OriginError, verify_request
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
    "admit",
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
        return cls(exc.error, exc.message)


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
        raise ApiError(ErrorCode.SHUTTING_DOWN, "The server is shutting down.")
    if state.broker is not None:
        _verify_broker(request, state)
        return None
    try:
        return admit_key(state, request_api_key(request.headers, request.query_params))
    except SessionError as exc:
        raise ApiError.from_session(exc) from None


def check_caller(request: Request) -> None:
    """:func:`admit` for requests that hold no session (listings, voice management)."""
    state = balancer_state(request)
    if state.broker is not None:
        _verify_broker(request, state)
        return
    try:
        state.auth.check(request_api_key(request.headers, request.query_params))
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
            ErrorCode.INVALID_API_KEY,
            f"This balancer is broker-managed; connect through the broker ({exc}).",
            status_code=403,
        ) from None


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], data: object, prefix: str) -> M:
    """``model`` validated from ``data`` (a mapping); 422 naming the field otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError.from_pydantic(exc, prefix) from None
