"""Which brokers a balancer registers with: the configured URLs, each host optionally standing
for every address it resolves to.

Several broker replicas behind one Kubernetes Service each keep their own registry, so a
balancer must register with every replica, not with whichever one the Service picks. A
headless Service answers a DNS lookup with one address per broker pod; with
``cluster.resolve_brokers`` each configured URL becomes one :class:`BrokerTarget` per address,
and :mod:`xtts_balancer.broker` looks the names up again every ``cluster.resolve_interval_s``
to follow replicas that appear or go away. Without it every URL is one target, as written.

The one invariant: a target's :attr:`BrokerTarget.url` names one broker process for as long
as the target is listed (an address and port, or the URL as configured), so two URLs that
resolve to one address are one registration, and a pod that comes back at a new address is a
new target.
"""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

__all__ = ["BrokerTarget", "Resolver", "load_resolver", "resolve_targets", "system_resolver"]

logger = logging.getLogger(__name__)

Resolver = Callable[[str], Iterable[str]]
"""A host name to its addresses (blocking; run in a thread)."""


@dataclass(frozen=True)
class BrokerTarget:
    """One broker to register with."""

    url: str
    """Base URL requests go to (``scheme://address:port`` when resolved)."""
    server_name: str | None = None
    """The configured host name, sent as ``Host`` and as the TLS server name when ``url``
    holds a resolved address (so a broker's certificate for its Service name still verifies)."""

    def __str__(self) -> str:
        return self.url if self.server_name is None else f"{self.url} ({self.server_name})"


def system_resolver(host: str) -> list[str]:
    """Every address ``host`` resolves to with the system's resolver (DNS, /etc/hosts)."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def load_resolver(spec: str | None) -> Resolver:
    """The resolver ``spec`` names (``package.module:function``); none = :func:`system_resolver`.

    Raises:
        ValueError: ``spec`` is malformed, cannot be imported or names no callable.
    """
    if spec is None:
        return system_resolver
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute.isidentifier():
        raise ValueError(
            f"broker_resolver {spec!r} is not an import path 'package.module:function'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f"broker_resolver {spec!r}: cannot import {module_name!r} ({exc})"
        ) from None
    resolver = getattr(module, attribute, None)
    if not callable(resolver):
        raise ValueError(f"broker_resolver {spec!r}: {module_name}.{attribute} is not callable")
    return resolver  # type: ignore[no-any-return]


async def resolve_targets(
    urls: Iterable[str], resolver: Resolver | None
) -> dict[str, BrokerTarget] | None:
    """The targets of ``urls`` by URL; ``resolver`` = None takes each URL as it is.

    Returns None when a name did not resolve (logged): the caller keeps the targets it has
    rather than deregistering from brokers that a failed lookup cannot tell apart from gone.
    """
    targets: dict[str, BrokerTarget] = {}
    for url in urls:
        if resolver is None:
            target = BrokerTarget(url)
            targets[target.url] = target
            continue
        parsed = httpx.URL(url)
        try:
            addresses = await asyncio.to_thread(resolver, parsed.host)
            resolved = sorted({_bare(address) for address in addresses})
        except Exception as exc:  # a resolver hook may raise anything: the caller retries
            logger.warning("could not resolve broker host %s: %s", parsed.host, exc)
            return None
        if not resolved:
            logger.warning("broker host %s resolved to no address", parsed.host)
            return None
        for address in resolved:
            target = BrokerTarget(str(parsed.copy_with(host=address)), parsed.host)
            targets[target.url] = target
    return targets


def _bare(address: str) -> str:
    """``address`` checked to be an IP address (IPv6 without brackets, as httpx takes it)."""
    return str(ipaddress.ip_address(address.strip("[]")))
