"""Why a session ends early: :class:`SessionError`, sent as an ElevenLabs-style error, then a close.

The ``error`` codes reuse the real service's where one exists (elevenlabs-protocol.md §2.4.3,
:class:`xtts_core.protocol.ErrorCode`); the rest are ours and listed in :class:`BalancerError`.
"""

from __future__ import annotations

from enum import Enum

from xtts_core.errors import ProtocolError
from xtts_core.protocol import CloseCode, ErrorCode, ErrorMessage

__all__ = ["BalancerError", "SessionError"]


class BalancerError(str, Enum):
    """``error`` codes of our own, for failures the real service has no published code for."""

    SERVER_BUSY = "server_busy"
    WORKER_FAILED = "worker_failed"
    INTERNAL_ERROR = "internal_error"
    MESSAGE_TOO_BIG = "message_too_big"
    UNSUPPORTED_DATA = "unsupported_data"
    TEXT_TOO_LONG = "text_too_long"
    TOO_MANY_SESSIONS = "too_many_sessions"
    SHUTTING_DOWN = "shutting_down"
    CONTEXT_CLOSING = "context_closing"


class SessionError(Exception):
    """End the session with ``{"message", "error", "code"}`` and close ``code``."""

    def __init__(
        self, message: str, error: str | Enum, code: int = CloseCode.POLICY_VIOLATION
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error = error.value if isinstance(error, Enum) else error
        self.code = int(code)

    @classmethod
    def from_protocol(cls, exc: ProtocolError) -> SessionError:
        return cls(exc.message, exc.error, exc.code)

    @classmethod
    def invalid(cls, message: str) -> SessionError:
        return cls(message, ErrorCode.INVALID_MESSAGE)

    def to_message(self) -> ErrorMessage:
        return ErrorMessage(message=self.message, error=self.error, code=self.code)
