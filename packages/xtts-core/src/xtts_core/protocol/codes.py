"""The protocol's numbers and codes: constants, websocket close codes, error codes, close reasons.

Constants: default chunk schedule and its bounds (§2.3, §2.5.1), the ``try_trigger_generation``
threshold (§2.3), inactivity limits (§2.6), contexts per socket (§3). Close codes (§2.4.3, §9.4;
original-spec.md §1.12 for 1001/1003/1011/1013): :class:`CloseCode`. Values of an error message's
``error`` field (§2.4.3): :class:`ErrorCode`.
"""

from __future__ import annotations

from enum import Enum, IntEnum
from typing import Final

# --- constants ------------------------------------------------------------------------------------

#: ``text`` of the first message (BOS) and of a keep-alive on stream-input (§2.3).
BOS_TEXT: Final = " "
#: ``text`` that ends a stream-input stream (EOS) or keeps a multi-stream context alive (§2.3, §3.1).
EOS_TEXT: Final = ""
#: ElevenLabs' default ``chunk_length_schedule``; the last value repeats (§2.3, §2.5.1).
DEFAULT_CHUNK_LENGTH_SCHEDULE: tuple[int, ...] = (120, 160, 250, 290)
#: Documented bounds of one schedule entry, in characters (§2.3); entries are clamped into them (§2.5.2).
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
    """Websocket close codes the protocol uses; :attr:`meaning` says when (§2.4.3, §9.4)."""

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
        "this close (§2.4.2, §3.1, §5.2)"
    ),
    CloseCode.GOING_AWAY: (
        "the server is shutting down and closes streams still running after its grace period "
        "(RFC 6455; original-spec.md §2.4 treats it like 1000)"
    ),
    CloseCode.UNSUPPORTED_DATA: (
        "data of a kind the endpoint cannot accept, e.g. a binary frame (RFC 6455; the original "
        "used it for a bad output format, original-spec.md §1.12; ElevenLabs-style errors use 1008)"
    ),
    CloseCode.POLICY_VIOLATION: (
        "every error the real service reports (input timeout, too many contexts, changed "
        "voice_settings, quota, bad API key), each after an error message {message, error, code} "
        "(§2.4.3, §9.4)"
    ),
    CloseCode.MESSAGE_TOO_BIG: (
        "sent by a client when a server frame exceeds its limit (1 MiB official SDK, 4 MiB "
        "livekit, 16 MiB pipecat), so keep frames small (§2.4.3)"
    ),
    CloseCode.INTERNAL_ERROR: (
        "unexpected server failure, e.g. a relay that cannot reach its backend "
        "(original-spec.md §1.12, §3.5)"
    ),
    CloseCode.TRY_AGAIN_LATER: (
        "no capacity: no free worker or balancer, or the wait queue is full or timed out "
        "(original-spec.md §1.12, §3.3)"
    ),
}


class ErrorCode(str, Enum):
    """Values of the ``error`` field of an :class:`ErrorMessage` (§2.4.3).

    The first two are the real service's codes (reuse them, §9.4); the rest are ours, for errors
    whose real code is unknown.
    """

    INPUT_TIMEOUT_EXCEEDED = "input_timeout_exceeded"
    MAX_ACTIVE_CONVERSATIONS = "max_active_conversations"
    INVALID_MESSAGE = "invalid_message"
    INVALID_API_KEY = "invalid_api_key"
    UNSUPPORTED_OUTPUT_FORMAT = "unsupported_output_format"
    VOICE_NOT_FOUND = "voice_not_found"


def close_reason(message: str) -> str:
    """The first at most 123 UTF-8 bytes of ``message``, cut on a character boundary (§2.4.3, §7)."""
    return message.encode("utf-8")[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore")
