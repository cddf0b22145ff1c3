"""Where a client may put its API key, and the one order in which the services look (§1.2).

The balancer and the broker both call :func:`request_api_key` on a request or a websocket
handshake, and :func:`message_api_key` on a websocket's first message, so a key is found in the
same place whichever service a client talks to. The order, first match wins:

1. the ``xi-api-key`` header;
2. the ``Authorization`` header (``Bearer <key>``, or the bare key);
3. the ``xi_api_key`` query parameter;
4. the ``authorization`` query parameter (``Bearer <key>``, or the bare key);
5. on a websocket, when none of those is present: the first message's ``xi_api_key`` (or
   ``xi-api-key``), then its ``authorization``.

Checking the key against the configured hashes is the services' job
(:class:`xtts_core.cluster.ApiKeys`); this module only finds it.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["bearer", "message_api_key", "request_api_key"]

#: Fields of a websocket's first message that may carry the key, in the order they are read.
_MESSAGE_KEY_FIELDS = ("xi_api_key", "xi-api-key", "authorization")


def bearer(value: object) -> str | None:
    """The token of ``Bearer <token>`` (or the bare value, stripped); ``None`` for nothing."""
    if not isinstance(value, str) or not value.strip():
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() == "bearer":
        return token.strip() or None
    return value.strip()


def request_api_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key sent with a request or handshake (steps 1-4 of the module docstring)."""
    return (
        bearer(headers.get("xi-api-key"))
        or bearer(headers.get("authorization"))
        or bearer(query.get("xi_api_key"))
        or bearer(query.get("authorization"))
    )


def message_api_key(message: Mapping[str, object]) -> str | None:
    """The key in a websocket's first message, a JSON object (step 5 of the module docstring)."""
    for name in _MESSAGE_KEY_FIELDS:
        key = bearer(message.get(name))
        if key is not None:
            return key
    return None
