"""The balancer's ``cluster:`` settings: how it finds, joins and trusts its brokers in broker mode.

Kept apart from :mod:`xtts_balancer.settings` (which imports it into the one settings model) because
its keys and their checks, the broker URLs and the resolver, are a topic of their own.
"""

from __future__ import annotations

import httpx
from pydantic import Field, SecretStr, field_validator

from xtts_balancer.discovery import load_resolver
from xtts_core.cluster import DEFAULT_MAX_SKEW_S
from xtts_core.settings import SettingsSection

__all__ = ["ClusterSection"]


class ClusterSection(SettingsSection):
    """Broker mode (``cluster:``), used when ``service.standalone_mode`` is false."""

    secret: SecretStr | None = None
    """The cluster's shared secret (the broker's ``cluster.secret``); signs and verifies."""
    balancer_id: str | None = None
    """This balancer's id at the broker; none = ``<hostname>:<service.port>``."""
    advertised_url: str | None = None
    """``http(s)://host:port`` the broker connects to; none = from service.host/port/TLS."""
    broker_url: str | None = None
    """The broker's base URL; none = ``http://<broker_host>:<broker_port>``."""
    broker_urls: list[str] = Field(default_factory=list)
    """Every broker's base URL (``http(s)://host:port``): the balancer registers, heartbeats and
    deregisters with each on its own. Empty = the one broker of ``broker_url``."""
    resolve_brokers: bool = False
    """Each broker URL's host names every broker replica (a Kubernetes headless Service): the
    balancer registers with every address it resolves to, and resolves it again every
    ``resolve_interval_s`` to follow replicas that appear or go away."""
    resolve_interval_s: float = Field(default=10.0, gt=0)
    """How often broker host names are resolved again (with ``resolve_brokers``)."""
    broker_resolver: str | None = None
    """``package.module:function`` that takes a host name and returns its addresses, used
    instead of the system resolver (a directory other than DNS); none = the system's."""
    max_clock_skew_s: float = Field(default=DEFAULT_MAX_SKEW_S, gt=0)
    """Largest clock difference accepted on a signed stream."""
    request_timeout_s: float = Field(default=10.0, gt=0)
    """Timeout of each registration, heartbeat and deregistration request."""
    retry_interval_s: float = Field(default=2.0, gt=0)
    """Wait after a failed registration before the next try (doubling, max 30 s)."""

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str | None) -> str | None:
        return None if value is None else _base_url(value)

    @field_validator("broker_urls")
    @classmethod
    def _broker_urls(cls, value: list[str]) -> list[str]:
        return [_base_url(url) for url in value]

    @field_validator("broker_resolver")
    @classmethod
    def _resolver(cls, value: str | None) -> str | None:
        load_resolver(value)  # raises ValueError naming the import path
        return value


def _base_url(value: str) -> str:
    """``value`` checked to be an ``http(s)://host[:port]`` base URL, without a trailing slash."""
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"{value!r} is not a URL ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/"):
        raise ValueError(f"{value!r} is not a base URL http(s)://host[:port]")
    return value.rstrip("/")
