"""Single-use tokens for websockets: minted for an API key holder, accepted once, then gone.

ElevenLabs' ``POST /v1/single-use-token/tts_websocket`` gives a caller holding an API key a
token it can hand to a browser, which opens a websocket with ``?single_use_token=…`` and never
sees the key. :class:`SingleUseTokens` is that token store, in one process's memory (both
services use it: a balancer for its own sockets, a broker for the sockets it relays): a token is
random (256 bits), expires ``ttl_s`` after it was minted, and :meth:`~SingleUseTokens.consume`
takes it out, so it is never valid twice. Each token remembers who minted it (the key's
identity), so a socket it opens counts against that key's limits. Torch-free.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

__all__ = ["SINGLE_USE_TOKEN_PARAM", "SingleUseTokens"]

#: The websocket query parameter that carries a token.
SINGLE_USE_TOKEN_PARAM = "single_use_token"


class SingleUseTokens:
    """Tokens minted by :meth:`mint`, each accepted once by :meth:`consume` within ``ttl_s``."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._tokens: dict[str, tuple[float, str]] = {}
        """token -> (expiry, identity of the key that minted it)."""

    def mint(self, identity: str) -> str:
        """A new token for the holder of the key ``identity``."""
        self._forget_expired()
        token = secrets.token_urlsafe(32)
        self._tokens[token] = (self._clock() + self._ttl_s, identity)
        return token

    def consume(self, token: str) -> str | None:
        """The minting identity of ``token`` if it is valid now, which also ends it; ``None``
        for a token that is unknown, expired or already used."""
        self._forget_expired()
        expiry_identity = self._tokens.pop(token, None)
        return None if expiry_identity is None else expiry_identity[1]

    def __len__(self) -> int:
        self._forget_expired()
        return len(self._tokens)

    def _forget_expired(self) -> None:
        now = self._clock()
        for token in [t for t, (expiry, _) in self._tokens.items() if expiry <= now]:
            del self._tokens[token]
