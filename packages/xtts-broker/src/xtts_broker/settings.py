"""The broker's settings: one pydantic-settings model from YAML plus ``XTTS_BROKER_*`` overrides.

The file is the one named by ``XTTS_BROKER_CONFIG_FILE`` (or ``--config``); an env variable such
as ``XTTS_BROKER_SERVICE__PORT=19001`` overrides a key (``__`` between levels). The keys of the
original xtts-stream broker (``service.host/port/strategy/balancer_timeout_seconds``) are
accepted with their meaning, so its configuration files keep working. Every key is documented in
``configs/broker.example.yaml``. Unknown keys are errors that name the key
(:mod:`xtts_core.settings`).
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from xtts_core.cluster import DEFAULT_MAX_SKEW_S
from xtts_core.logs import LogFormat
from xtts_core.settings import ApiKeyAuthSection, ServiceSettings, SettingsSection, load_settings

__all__ = [
    "AuthSection",
    "BrokerSettings",
    "ClusterSection",
    "RoutingSection",
    "ServiceSection",
    "Strategy",
    "VoicesSection",
    "is_loopback_host",
    "load_broker_settings",
]

Strategy = Literal["deep", "wide", "random"]

#: The protocol's frames are small JSON; anything far larger is abuse (the SDK's limit is 1 MiB).
_DEFAULT_MAX_MESSAGE = 1024 * 1024


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine only: a loopback address or ``localhost``."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class ServiceSection(SettingsSection):
    """Where the broker listens and how it picks a balancer (the original's block)."""

    host: str = "0.0.0.0"
    """Bind address. A broker bound off loopback refuses balancers that advertise loopback."""
    port: int = Field(default=19000, ge=1, le=65535)
    """Port of the client websockets, the cluster endpoints and /health, /ready, /metrics."""
    strategy: Strategy = "deep"
    """``deep``: fill the fullest balancer first; ``wide``: spread; ``random``."""
    balancer_timeout_seconds: float = Field(default=2.0, gt=0)
    """HTTP timeout of a ``/workers/idle`` probe of a balancer whose heartbeat is stale."""
    graceful_timeout_s: float = Field(default=10.0, ge=0)
    """On SIGTERM/SIGINT: how long running streams may continue before they are closed (1001)."""
    websocket_max_message_size: int = Field(default=_DEFAULT_MAX_MESSAGE, ge=1024)
    """Largest client frame accepted, in bytes; bigger ones close the stream (1009)."""
    websocket_ping_interval_s: float | None = Field(default=20.0, gt=0)
    """Ping idle client sockets this often to notice dead peers; ``null`` turns pings off."""
    tls_certfile: Path | None = None
    """PEM certificate (chain): serve https/wss, which the official SDK's realtime helper needs."""
    tls_keyfile: Path | None = None
    """PEM private key of ``tls_certfile``; set both or neither."""
    log_format: LogFormat = "text"
    """``text`` for people, ``json`` for a log pipeline: one JSON object per line (see
    :mod:`xtts_core.logs`)."""

    @model_validator(mode="after")
    def _tls_pair(self) -> ServiceSection:
        # Checked here, not when Hypercorn binds: a typo should fail as a settings error that
        # names the key, before the broker announces an address it cannot serve.
        if self.tls_certfile is None and self.tls_keyfile is None:
            return self
        if self.tls_certfile is None or self.tls_keyfile is None:
            raise ValueError("tls_certfile and tls_keyfile must be set together")
        for key, path in (("tls_certfile", self.tls_certfile), ("tls_keyfile", self.tls_keyfile)):
            if not path.is_file():
                raise ValueError(f"{key} {path} is not a file")
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                self.tls_certfile, self.tls_keyfile
            )
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"cannot load tls_certfile {self.tls_certfile} with tls_keyfile "
                f"{self.tls_keyfile}: {exc}"
            ) from exc
        return self

    @property
    def tls(self) -> bool:
        """Whether the broker serves https/wss."""
        return self.tls_certfile is not None

    @property
    def on_loopback(self) -> bool:
        """Whether the broker only listens on this machine (tests, single-host setups)."""
        return is_loopback_host(self.host)


class ClusterSection(SettingsSection):
    """How balancers prove themselves and how long the broker trusts their heartbeats."""

    secret: SecretStr
    """Shared secret of broker and balancers (at least 16 characters). Balancers sign their
    registrations with it; the broker signs every stream it opens to a balancer."""
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    """Interval the broker asks balancers to heartbeat at (sent in the registration reply)."""
    heartbeat_ttl_s: float = Field(default=15.0, gt=0)
    """No heartbeat for this long: the balancer is unhealthy and gets no new streams."""
    removal_grace_s: float = Field(default=120.0, gt=0)
    """No heartbeat for this long: the balancer is removed and must register again."""
    capacity_fresh_s: float | None = Field(default=None, gt=0)
    """A heartbeat's idle count is trusted for this long; older ones are re-probed on demand.
    Default: ``heartbeat_interval_s`` plus one second."""
    max_clock_skew_s: float = Field(default=DEFAULT_MAX_SKEW_S, gt=0)
    """Largest accepted clock difference in signed requests."""

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (generate one: openssl rand -hex 32)")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> ClusterSection:
        if self.heartbeat_ttl_s <= self.heartbeat_interval_s:
            raise ValueError(
                f"heartbeat_ttl_s ({self.heartbeat_ttl_s:g}) must exceed heartbeat_interval_s "
                f"({self.heartbeat_interval_s:g}), or every balancer flaps"
            )
        if self.removal_grace_s < self.heartbeat_ttl_s:
            raise ValueError(
                f"removal_grace_s ({self.removal_grace_s:g}) must be at least heartbeat_ttl_s "
                f"({self.heartbeat_ttl_s:g})"
            )
        return self

    @property
    def fresh_for_s(self) -> float:
        """How long a reported idle count is trusted before a probe."""
        if self.capacity_fresh_s is not None:
            return self.capacity_fresh_s
        return self.heartbeat_interval_s + 1.0


class AuthSection(ApiKeyAuthSection):
    """Client authentication at the broker (ElevenLabs' ``xi-api-key``); ``xtts-broker hash-key``
    prints a key's hash."""

    missing_keys_advice: ClassVar[str] = "hashed keys (xtts-broker hash-key)"

    first_message_timeout_s: float = Field(default=20.0, gt=0)
    """A client that sends its key in the first message must send that message within this."""


class RoutingSection(SettingsSection):
    """Retries and timeouts of one client's route to a balancer."""

    max_attempts: int = Field(default=3, ge=1, le=10)
    """Balancers tried per stream before the client gets "no capacity" (1013)."""
    connect_timeout_s: float = Field(default=5.0, gt=0)
    """Timeout of the websocket handshake, or the HTTP connection, with a balancer."""
    read_timeout_s: float = Field(default=60.0, gt=0)
    """Longest wait for the next bytes of a balancer's HTTP answer (its headers included): a
    balancer silent for longer is treated as failed instead of holding the client for ever."""


class VoicesSection(SettingsSection):
    """The fleet's voice library, kept equal on every balancer (:mod:`xtts_broker.voice_sync`)."""

    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    """Largest ``POST /v1/voices/add`` request relayed; larger is 413 (the balancers' default
    ``limits.max_upload_bytes``; each balancer still applies its own)."""
    sync_interval_s: float = Field(default=10.0, gt=0)
    """How often every healthy balancer's library is compared with the others' and repaired."""
    admit_timeout_s: float = Field(default=3.0, gt=0)
    """How long a registration waits for its balancer to receive the fleet's voices; a balancer
    is routed to only once it has them, so a longer copy delays that, not the registration."""


class BrokerSettings(ServiceSettings):
    """Everything the broker reads at start; see ``configs/broker.example.yaml``."""

    model_config = SettingsConfigDict(env_prefix="XTTS_BROKER_")

    service: ServiceSection = ServiceSection()
    cluster: ClusterSection
    auth: AuthSection
    """Required, so that a forgotten block never means "no client authentication"."""
    routing: RoutingSection = RoutingSection()
    voices: VoicesSection = VoicesSection()


def load_broker_settings(path: str | None = None) -> BrokerSettings:
    """The broker's settings from ``path`` or ``XTTS_BROKER_CONFIG_FILE`` plus the environment.

    Raises:
        xtts_core.errors.SettingsError: one line naming the file and every bad field.
    """
    return load_settings(BrokerSettings, path)
