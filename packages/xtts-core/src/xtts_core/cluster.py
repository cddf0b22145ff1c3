"""The contract between a broker and its balancers: schemas, proof of origin, client keys (no torch).

A balancer registers with a broker only with a request signed by the shared cluster secret, and
accepts a stream only when the broker signed it. Both sides import this one module, so they
cannot drift apart:

- **Schemas** of the broker's cluster endpoints: :class:`BalancerRegistration` (the original's
  ``{id, host, port, instances}`` plus an advertised URL, capacity, live idle count and version),
  :class:`BalancerHeartbeat` (live capacity), :class:`BalancerDeregistration`, the broker's
  :class:`RegistrationAccepted` reply, and :class:`IdleWorkers`, the balancer's ``GET
  /workers/idle`` body kept from the original. Paths are the ``*_PATH`` constants.
- **Proof of origin**: an HMAC-SHA256 over method, path, timestamp, session id and a digest of the
  body, keyed with the shared cluster secret and sent in the :data:`TIMESTAMP_HEADER` /
  :data:`SIGNATURE_HEADER` pair. The broker signs each websocket it opens to a balancer; a
  balancer signs its registration, heartbeat and deregistration requests. :func:`sign_request`
  and :func:`verify_request` are used on both sides; verification rejects clock skew beyond
  :data:`DEFAULT_MAX_SKEW_S` and compares in constant time. A signature proves who sent a request
  and when; a receiver that must refuse a replay of a captured websocket handshake within the skew
  window keeps a :class:`ReplayGuard` of the session ids it accepted.
- **Session id**: :data:`SESSION_ID_HEADER` carries the broker's session id to the balancer, so one
  id follows a stream through both services' logs.
- **Client API keys**: stored as ``sha256:<hex>`` (:func:`hash_api_key`) and checked in constant
  time by :class:`ApiKeys`, the same way by broker and balancer.

The path signed is the decoded URL path without the query: ASGI's ``scope["path"]`` (not
Starlette's ``url.path``, which re-parses the path and cuts it at a decoded ``?``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from xtts_core.errors import XttsError

__all__ = [
    "BALANCERS_PATH",
    "DEFAULT_MAX_SKEW_S",
    "DEREGISTER_PATH",
    "HEARTBEAT_PATH",
    "IDLE_PATH",
    "REGISTER_PATH",
    "SESSION_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ApiKeys",
    "BalancerDeregistration",
    "BalancerHeartbeat",
    "BalancerRegistration",
    "IdleWorkers",
    "OriginError",
    "RegistrationAccepted",
    "ReplayGuard",
    "api_key_id",
    "hash_api_key",
    "sign_request",
    "verify_request",
]

# --- paths and headers ----------------------------------------------------------------------------

REGISTER_PATH: Final = "/broker/register"
HEARTBEAT_PATH: Final = "/broker/heartbeat"
DEREGISTER_PATH: Final = "/broker/deregister"
BALANCERS_PATH: Final = "/broker/balancers"
#: The balancer's capacity endpoint, the original's contract (original-spec.md §2.5).
IDLE_PATH: Final = "/workers/idle"

#: Unix time in whole seconds at which the request was signed.
TIMESTAMP_HEADER: Final = "x-xtts-origin-timestamp"
#: ``v1=<hex HMAC-SHA256>`` of the request (see :func:`sign_request`).
SIGNATURE_HEADER: Final = "x-xtts-origin-signature"
#: The session id a broker gave a proxied stream; balancers log it on every line of that stream.
SESSION_ID_HEADER: Final = "x-xtts-session-id"

#: Largest accepted difference between the signer's and the verifier's clocks, in seconds.
DEFAULT_MAX_SKEW_S: Final = 30.0

_SIGNATURE_VERSION = "v1"
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_SESSION_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{0,128}$")


# --- schemas --------------------------------------------------------------------------------------


class _ClusterModel(BaseModel):
    """Unknown keys are ignored so that a newer balancer can talk to an older broker."""

    model_config = ConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)


class BalancerRegistration(_ClusterModel):
    """Body of ``POST /broker/register``: who the balancer is, where to reach it, what it holds."""

    id: str = Field(pattern=_ID_PATTERN)
    """Stable balancer id; registering an existing id again updates it in place."""
    host: str = Field(min_length=1, max_length=253)
    """Host the broker connects to (the original's field)."""
    port: int = Field(ge=1, le=65535)
    """Port of the balancer's client websocket (the original's field)."""
    instances: int = Field(default=1, ge=1)
    """Worker processes (the original's field; informational)."""
    url: str | None = None
    """Advertised base URL, ``http(s)://host:port``; overrides ``host``/``port`` when set (e.g.
    behind a proxy or with TLS). The broker opens ``ws(s)://`` to the same address."""
    capacity: int | None = Field(default=None, ge=0)
    """Total streams the balancer can serve at once (workers x slots); default ``instances``."""
    idle: int | None = Field(default=None, ge=0)
    """Streams it could accept right now; default ``capacity``."""
    version: str = Field(default="unknown", max_length=64)
    """The balancer's distribution version, shown in the broker's listing."""

    @model_validator(mode="after")
    def _check(self) -> BalancerRegistration:
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"url must be http(s)://host[:port], got {self.url!r}")
            if parts.path not in ("", "/") or parts.query or parts.fragment:
                raise ValueError(f"url must not have a path, query or fragment, got {self.url!r}")
        if self.idle is not None and self.idle > self.total_capacity:
            raise ValueError(f"idle ({self.idle}) exceeds capacity ({self.total_capacity})")
        return self

    @property
    def total_capacity(self) -> int:
        """``capacity``, or ``instances`` when the balancer did not say."""
        return self.instances if self.capacity is None else self.capacity

    @property
    def base_url(self) -> str:
        """``url`` without a trailing slash, else ``http://host:port`` (IPv6 hosts bracketed)."""
        if self.url is not None:
            return self.url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def advertised_host(self) -> str:
        """The host the broker will connect to (from ``url`` when given)."""
        return urlsplit(self.base_url).hostname or self.host


class BalancerHeartbeat(_ClusterModel):
    """Body of ``POST /broker/heartbeat``: the balancer's live capacity, sent every few seconds."""

    id: str = Field(pattern=_ID_PATTERN)
    idle: int = Field(ge=0)
    """Streams it could accept right now."""
    capacity: int = Field(ge=0)
    """Total streams it can serve at once (workers may have died or come back)."""

    @model_validator(mode="after")
    def _check(self) -> BalancerHeartbeat:
        if self.idle > self.capacity:
            raise ValueError(f"idle ({self.idle}) exceeds capacity ({self.capacity})")
        return self


class BalancerDeregistration(_ClusterModel):
    """Body of ``POST /broker/deregister``, sent by a balancer that is shutting down."""

    id: str = Field(pattern=_ID_PATTERN)


class RegistrationAccepted(_ClusterModel):
    """The broker's reply to a registration: how often to heartbeat and when it gives up."""

    status: str = "ok"
    heartbeat_interval_s: float = Field(gt=0)
    """Send a heartbeat at least this often."""
    heartbeat_ttl_s: float = Field(gt=0)
    """After this long without a heartbeat the broker stops routing to the balancer."""


class IdleWorkers(_ClusterModel):
    """Body of the balancer's ``GET /workers/idle`` (original-spec.md §2.5)."""

    idle_workers: int = Field(ge=0)


# --- proof of origin ------------------------------------------------------------------------------


class OriginError(XttsError, ValueError):
    """A request's proof of origin is missing, malformed, too old or wrong; the text says which."""


def _message(method: str, path: str, timestamp: int, session_id: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join(
        (_SIGNATURE_VERSION, method.upper(), path, str(timestamp), session_id, digest)
    ).encode("utf-8")


def _signature(secret: str, message: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"{_SIGNATURE_VERSION}={mac}"


def sign_request(
    secret: str,
    method: str,
    path: str,
    *,
    session_id: str = "",
    body: bytes = b"",
    timestamp: int | None = None,
) -> dict[str, str]:
    """Headers proving that the holder of ``secret`` sent this request now.

    Args:
        secret: the cluster's shared secret.
        method: HTTP method (``GET`` for a websocket handshake).
        path: the decoded URL path, without the query (ASGI ``scope["path"]``).
        session_id: the stream's session id (also sent in :data:`SESSION_ID_HEADER`), or empty.
        body: the exact request body bytes (empty for a websocket handshake).
        timestamp: Unix seconds; now if omitted.

    Returns:
        :data:`TIMESTAMP_HEADER`, :data:`SIGNATURE_HEADER` and, when ``session_id`` is given,
        :data:`SESSION_ID_HEADER`.
    """
    if not secret:
        raise OriginError("cannot sign with an empty secret")
    if not _SESSION_ID_RE.match(session_id):
        raise OriginError(f"session id {session_id!r} has characters outside [A-Za-z0-9._:-]")
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: _signature(secret, _message(method, path, ts, session_id, body)),
    }
    if session_id:
        headers[SESSION_ID_HEADER] = session_id
    return headers


def verify_request(
    secret: str,
    method: str,
    path: str,
    headers: Mapping[str, str],
    *,
    body: bytes = b"",
    now: float | None = None,
    max_skew_s: float = DEFAULT_MAX_SKEW_S,
) -> str:
    """Check the proof-of-origin headers of a request; return its session id (empty if none).

    ``headers`` must look names up case-insensitively when they come off the wire (Starlette's
    ``Headers`` and ``websockets``' ``Headers`` both do); a plain ``dict`` must use the lower-case
    names of the constants here.

    Raises:
        OriginError: a header is missing or malformed, the timestamp is more than ``max_skew_s``
            away from ``now``, or the signature does not match (compared in constant time).
    """
    raw_ts = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if raw_ts is None or signature is None:
        raise OriginError(
            f"missing proof of origin: {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required"
        )
    if not raw_ts.isascii() or not raw_ts.isdigit() or len(raw_ts) > 12:
        raise OriginError(f"{TIMESTAMP_HEADER} must be Unix seconds, got {raw_ts[:20]!r}")
    ts = int(raw_ts)
    clock = time.time() if now is None else now
    if abs(clock - ts) > max_skew_s:
        raise OriginError(
            f"proof of origin is {clock - ts:+.0f} s off this host's clock "
            f"(at most {max_skew_s:g} s allowed); check both clocks (NTP)"
        )
    session_id = headers.get(SESSION_ID_HEADER, "")
    if not _SESSION_ID_RE.match(session_id):
        raise OriginError(f"{SESSION_ID_HEADER} has characters outside [A-Za-z0-9._:-]")
    expected = _signature(secret, _message(method, path, ts, session_id, body))
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace")):
        raise OriginError("proof of origin does not match: wrong secret or altered request")
    return session_id


class ReplayGuard:
    """Session (or request) ids seen within the skew window, so one signed handshake opens one
    stream only, and one signed cluster request takes effect once.

    A verified signature stays valid for ``max_skew_s`` on either side of its timestamp; whoever
    captured it could replay it in that window. Call :meth:`claim` after :func:`verify_request`;
    entries are dropped once their signature could no longer verify.
    """

    def __init__(self, max_skew_s: float = DEFAULT_MAX_SKEW_S) -> None:
        self._window = max_skew_s
        self._seen: dict[str, float] = {}

    def claim(self, session_id: str, *, now: float | None = None) -> None:
        """Record ``session_id``; raise :class:`OriginError` if it was already used.

        An empty session id cannot be told apart from another and is refused.
        """
        clock = time.time() if now is None else now
        self._seen = {sid: t for sid, t in self._seen.items() if clock - t <= 2 * self._window}
        if not session_id:
            raise OriginError(f"a signed request needs a {SESSION_ID_HEADER}")
        if session_id in self._seen:
            raise OriginError(f"session id {session_id} was already used (replayed request)")
        self._seen[session_id] = clock

    def __len__(self) -> int:
        return len(self._seen)


# --- client API keys ------------------------------------------------------------------------------

_HASH_PREFIX = "sha256:"
_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def hash_api_key(key: str) -> str:
    """The stored form of a client API key: ``sha256:<64 hex digits>``.

    Keys are random tokens, not passwords, so a plain SHA-256 is enough: it keeps the config file
    from holding usable keys, and a fixed-length digest lets :class:`ApiKeys` compare in constant
    time.
    """
    if not key:
        raise ValueError("an API key must not be empty")
    return _HASH_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def api_key_id(key: str) -> str:
    """The name of a client API key in logs: the first 16 hex digits of its hash, so a line
    can be matched to an ``auth.api_key_hashes`` entry and never holds the key itself."""
    return hash_api_key(key).removeprefix(_HASH_PREFIX)[:16]


class ApiKeys:
    """A set of hashed client API keys, checked in constant time."""

    def __init__(self, hashes: Iterable[str]) -> None:
        digests = []
        for value in hashes:
            if not _HASH_RE.match(value):
                raise ValueError(
                    f"API key hashes must look like sha256:<64 lower-case hex digits>, got "
                    f"{value[:16]!r}...; hash a key with hash_api_key()"
                )
            digests.append(value.encode("ascii"))
        self._digests = tuple(digests)

    def __len__(self) -> int:
        return len(self._digests)

    def check(self, key: str | None) -> bool:
        """Whether ``key`` is one of the keys; every stored hash is compared, no early exit."""
        if not key:
            return False
        presented = hash_api_key(key).encode("ascii")
        found = False
        for digest in self._digests:
            found |= hmac.compare_digest(presented, digest)
        return found
