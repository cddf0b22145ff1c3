"""What the relay reads in frames and close codes: a first message's key, a balancer's "no
capacity" error, which close codes mean "try the next balancer" and which may be sent on.

The relay (:mod:`xtts_broker.proxy`) keeps client frames as they came; these helpers look inside
one without changing it, and never raise on a frame they cannot parse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from xtts_core.protocol import CloseCode, message_api_key

__all__ = [
    "FAILOVER_CODES",
    "SENDABLE",
    "BackendClosed",
    "ClientGone",
    "Frame",
    "first_message_key",
    "is_no_capacity",
    "sendable",
]

Frame = str | bytes

#: Close codes of a balancer that mean "try elsewhere" when no audio has been sent yet.
FAILOVER_CODES: Final = frozenset({1001, 1006, 1011, 1012, 1013, 1014})
#: Codes that may be sent in a close frame (RFC 6455 §7.4); others are mapped.
SENDABLE = (
    frozenset(range(1000, 1004)) | frozenset(range(1007, 1015)) | frozenset(range(3000, 5000))
)


@dataclass(frozen=True)
class ClientGone:
    """The client closed its socket with ``code`` and ``reason``."""

    code: int
    reason: str


@dataclass(frozen=True)
class BackendClosed:
    """The balancer closed with ``code``; ``failover``: another balancer may take the stream."""

    code: int
    reason: str
    failover: bool


def first_message_key(frame: Frame) -> str | None:
    try:
        body = json.loads(frame)
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting: no key, not a crash
        return None
    return message_api_key(body) if isinstance(body, dict) else None


def is_no_capacity(frame: Frame) -> bool:
    if not isinstance(frame, str) or '"error"' not in frame:
        return False
    try:
        body = json.loads(frame)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("code") == CloseCode.TRY_AGAIN_LATER


def sendable(code: int, fallback: int) -> int:
    return code if code in SENDABLE else fallback
