"""The protocol's numbers and codes: constants, close codes, error codes, close reasons.

Constants: default chunk schedule and its bounds (§2.3, §2.5), the ``try_trigger_generation``
threshold (§2.5), inactivity limits (§2.6), contexts per socket (§3). Close codes and every error
code with its HTTP status (§5): :class:`CloseCode`, :class:`ErrorCode`, :data:`HTTP_STATUS`.
Section numbers are those of ``docs/protocol.md``.
"""

from __future__ import annotations

from enum import Enum, IntEnum
from typing import Final

from xtts_core.errors import ProtocolError

# --- constants ------------------------------------------------------------------------------------

#: ``text`` of the first message (BOS) and of a keep-alive on stream-input (§2.3).
BOS_TEXT: Final = " "
#: ``text`` that ends a stream-input stream (EOS) or keeps a multi-stream context alive (§2.3, §3.1).
EOS_TEXT: Final = ""
#: ElevenLabs' default ``chunk_length_schedule``; the last value repeats (§2.3, §2.5).
DEFAULT_CHUNK_LENGTH_SCHEDULE: tuple[int, ...] = (120, 160, 250, 290)
#: Documented bounds of one schedule entry, in characters (§2.3); entries are clamped into them (§2.5).
CHUNK_LENGTH_MIN = 50
CHUNK_LENGTH_MAX = 500
#: Least buffered characters for ``try_trigger_generation`` to generate (§2.3, an engineer's figure).
TRY_TRIGGER_MIN_CHARS = 50
#: Inactivity timeout: default and documented maximum, in seconds (§2.2, §2.6).
DEFAULT_INACTIVITY_TIMEOUT_S = 20
MAX_INACTIVITY_TIMEOUT_S = 180
#: Concurrent contexts one multi-stream-input socket may hold (§3, §3.1).
MAX_CONTEXTS_PER_SOCKET = 5
#: RFC 6455 limit on a close frame's reason, in UTF-8 bytes (§2.4.3).
MAX_CLOSE_REASON_BYTES = 123


class CloseCode(IntEnum):
    """Websocket close codes the protocol uses; :attr:`meaning` says when (§2.4.3, §5)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013

    @property
    def meaning(self) -> str:
        """When this code is sent, and where the spec says so."""
        return _CLOSE_CODE_MEANINGS[self]


_CLOSE_CODE_MEANINGS: dict[CloseCode, str] = {
    CloseCode.NORMAL: (
        'normal end: after the final message that answers EOS {"text": ""} on stream-input, '
        "and after close_socket on multi-stream-input; the official SDK stops reading only on "
        "this close (§2.4.2, §3.1)"
    ),
    CloseCode.GOING_AWAY: (
        "the server is shutting down and closes streams still running after its grace period "
        "(RFC 6455, §5)"
    ),
    CloseCode.UNSUPPORTED_DATA: (
        "data of a kind the endpoint cannot accept: a binary frame (RFC 6455, §1.3); a bad "
        "output format is an ElevenLabs-style error with 1008"
    ),
    CloseCode.POLICY_VIOLATION: (
        "every error the real service reports (input timeout, too many contexts, changed "
        "voice_settings, quota, bad API key), each after an error message {message, error, code} "
        "(§2.4.3, §5)"
    ),
    CloseCode.MESSAGE_TOO_BIG: (
        "sent by a client when a server frame exceeds its limit (1 MiB official SDK, 4 MiB "
        "livekit, 16 MiB pipecat), so keep frames small (§2.4.3)"
    ),
    CloseCode.INTERNAL_ERROR: (
        "unexpected server failure, e.g. a relay that cannot reach its backend (§5)"
    ),
    CloseCode.TRY_AGAIN_LATER: (
        "no capacity: no free worker or balancer, or the wait queue is full or timed out (§5)"
    ),
}


class ErrorCode(str, Enum):
    """Every machine-readable error code the services send (docs/protocol.md §5).

    The value is the ``error`` field of a websocket error message (§2.4.3) and the
    ``detail.status`` of an HTTP error body (§4.4); :data:`HTTP_STATUS` gives the HTTP status
    each is answered with. The real service's codes are reused where one exists (§5); the rest
    are ours, for errors whose real code is unknown or that only a self-hosted cluster has.
    """

    # The real service's codes.
    INPUT_TIMEOUT_EXCEEDED = "input_timeout_exceeded"
    MAX_ACTIVE_CONVERSATIONS = "max_active_conversations"
    INVALID_API_KEY = "invalid_api_key"
    VOICE_NOT_FOUND = "voice_not_found"
    MAX_CHARACTER_LIMIT_EXCEEDED = "max_character_limit_exceeded"
    TOO_MANY_CONCURRENT_REQUESTS = "too_many_concurrent_requests"
    SYSTEM_BUSY = "system_busy"
    # A request or message the protocol refuses.
    INVALID_MESSAGE = "invalid_message"
    INVALID_REQUEST = "invalid_request"
    UNSUPPORTED_OUTPUT_FORMAT = "unsupported_output_format"
    UNSUPPORTED_DATA = "unsupported_data"
    MESSAGE_TOO_BIG = "message_too_big"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    LENGTH_REQUIRED = "length_required"
    CONTEXT_CLOSING = "context_closing"
    # Limits and capacity.
    NO_CAPACITY = "no_capacity"
    NO_BALANCER = "no_balancer"
    SHUTTING_DOWN = "shutting_down"
    # Failures.
    WORKER_FAILED = "worker_failed"
    BALANCER_FAILED = "balancer_failed"
    INTERNAL_ERROR = "internal_error"
    CLIENT_LEFT = "client_left"
    # Voice management.
    VOICE_NOT_DELETABLE = "voice_not_deletable"
    VOICE_LIBRARY_DISABLED = "voice_library_disabled"


#: The HTTP status of each error code an HTTP endpoint answers with (§4.4, §5).
HTTP_STATUS: Final[dict[ErrorCode, int]] = {
    ErrorCode.INVALID_API_KEY: 401,
    ErrorCode.VOICE_NOT_FOUND: 404,
    ErrorCode.MAX_CHARACTER_LIMIT_EXCEEDED: 400,
    ErrorCode.TOO_MANY_CONCURRENT_REQUESTS: 429,
    ErrorCode.SYSTEM_BUSY: 429,
    ErrorCode.INVALID_MESSAGE: 422,
    ErrorCode.INVALID_REQUEST: 422,
    ErrorCode.UNSUPPORTED_OUTPUT_FORMAT: 422,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.LENGTH_REQUIRED: 411,
    ErrorCode.NO_CAPACITY: 429,
    ErrorCode.NO_BALANCER: 503,
    ErrorCode.SHUTTING_DOWN: 503,
    ErrorCode.WORKER_FAILED: 500,
    ErrorCode.BALANCER_FAILED: 502,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.VOICE_NOT_DELETABLE: 403,
    ErrorCode.VOICE_LIBRARY_DISABLED: 409,
}


def http_status(error: str) -> int:
    """The HTTP status for the error code ``error`` (500 for one that has none)."""
    try:
        return HTTP_STATUS.get(ErrorCode(error), 500)
    except ValueError:
        return 500


def invalid_message(
    message: str, error: ErrorCode = ErrorCode.INVALID_MESSAGE,
    code: CloseCode = CloseCode.POLICY_VIOLATION,
) -> ProtocolError:  # fmt: skip
    """A :class:`~xtts_core.errors.ProtocolError` for ``message`` (by default the common case:
    ``invalid_message``, then close 1008, as the real service closes on every error)."""
    return ProtocolError(message, error=error.value, code=int(code))


def close_reason(message: str) -> str:
    """The first at most 123 UTF-8 bytes of ``message``, cut on a character boundary (§2.4.3, §2.4)."""
    return message.encode("utf-8")[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore")
