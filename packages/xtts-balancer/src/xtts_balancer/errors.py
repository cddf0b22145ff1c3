"""Why a session ends early: :class:`SessionError`, sent as an ElevenLabs-style error, then a close.

Its ``error`` is one of the protocol's codes (:class:`xtts_core.protocol.ErrorCode`,
docs/protocol.md §5): the websocket sends it in the error message (§2.4.3), the HTTP endpoints
answer with its status (:func:`xtts_core.protocol.http_status`).
"""

from __future__ import annotations

from xtts_core.errors import ProtocolError
from xtts_core.protocol import CloseCode, ErrorCode, ErrorMessage

__all__ = ["SessionError"]


class SessionError(Exception):
    """End the session with ``{"message", "error", "code"}`` and close ``code``."""

    def __init__(
        self, message: str, error: ErrorCode | str, code: int = CloseCode.POLICY_VIOLATION,
        *, status: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.message = message
        self.error = error.value if isinstance(error, ErrorCode) else error
        self.code = int(code)
        self.status = status
        """The HTTP status, where it is not the error code's (:func:`~xtts_core.protocol.http_status`)."""

    @classmethod
    def from_protocol(cls, exc: ProtocolError) -> SessionError:
        return cls(exc.message, exc.error, exc.code)

    @classmethod
    def invalid(cls, message: str) -> SessionError:
        return cls(message, ErrorCode.INVALID_MESSAGE)

    def to_message(self) -> ErrorMessage:
        return ErrorMessage(message=self.message, error=self.error, code=self.code)
