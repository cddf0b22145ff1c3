"""API keys: checking the key a client sent against the configured hashes.

Where a client may put its key, and in which order the places are read, is the protocol's
(:func:`xtts_core.protocol.request_api_key`, docs/protocol.md §1.2), the same at the broker. Keys are stored as
SHA-256 hashes and checked by :class:`xtts_core.cluster.ApiKeys`, the same code the broker uses:
the presented key's hash is compared with every stored hash in constant time.
"""

from __future__ import annotations

from xtts_balancer.errors import SessionError
from xtts_balancer.settings import AuthSection
from xtts_core.cluster import ApiKeys, api_key_id
from xtts_core.protocol import ErrorCode

__all__ = ["Authenticator"]


class Authenticator:
    """Checks keys against ``auth.api_key_hashes``; a no-op when auth is disabled."""

    def __init__(self, section: AuthSection) -> None:
        self.enabled = section.enabled
        self._keys = ApiKeys(section.api_key_hashes)

    def check(self, key: str | None) -> str:
        """The identity (:func:`~xtts_core.cluster.api_key_id`) of a valid key; raises :class:`SessionError` (1008) otherwise.

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
        return api_key_id(key)
