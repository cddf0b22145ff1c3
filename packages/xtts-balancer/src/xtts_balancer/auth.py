"""API keys: where a client may put one, and checking it against the configured hashes.

A key may come in the ``xi-api-key`` header, an ``Authorization: Bearer`` header, the
``xi_api_key``/``authorization`` query parameters, or the first message's ``xi_api_key``
(``xi-api-key``)/``authorization`` fields (elevenlabs-protocol.md §1.2). Keys are stored as
SHA-256 hashes and checked by :class:`xtts_core.cluster.ApiKeys`, the same code the broker uses:
the presented key's hash is compared with every stored hash in constant time.
"""

from __future__ import annotations

from collections.abc import Mapping

from xtts_balancer.errors import SessionError
from xtts_balancer.settings import AuthSection
from xtts_core.cluster import ApiKeys, hash_api_key
from xtts_core.protocol import ErrorCode

__all__ = ["Authenticator", "bearer", "key_from_request"]


def bearer(value: str | None) -> str | None:
    """The token of ``Bearer <token>`` (or the bare value); ``None`` for nothing."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() == "bearer":
        return token.strip() or None
    return value.strip()


def key_from_request(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key sent with the handshake, if any (headers first, then the query)."""
    return (
        headers.get("xi-api-key")
        or bearer(headers.get("authorization"))
        or query.get("xi_api_key")
        or bearer(query.get("authorization"))
    )


class Authenticator:
    """Checks keys against ``auth.api_key_hashes``; a no-op when auth is disabled."""

    def __init__(self, section: AuthSection) -> None:
        self.enabled = section.enabled
        self._keys = ApiKeys(section.api_key_hashes)

    def check(self, key: str | None) -> str:
        """The identity (hash prefix) of a valid key; raises :class:`SessionError` (1008) otherwise.

        With auth disabled every client is ``"anonymous"``.
        """
        if not self.enabled:
            return "anonymous"
        if not key:
            raise SessionError(
                "An API key is required: send it in the xi-api-key header or as xi_api_key in "
                "the first message.",
                ErrorCode.INVALID_API_KEY,
            )
        if not self._keys.check(key):  # constant time, every stored hash compared
            raise SessionError("Invalid API key.", ErrorCode.INVALID_API_KEY)
        return hash_api_key(key).removeprefix("sha256:")[:16]
