"""Broker mode (``service.standalone_mode: false``): register, heartbeat, deregister, verify.

Everything follows the contract of :mod:`xtts_core.cluster`, which the broker imports too:

- :class:`BrokerLinks` keeps one :class:`BrokerLink` per broker of
  :mod:`xtts_balancer.discovery` (every URL of ``cluster.broker_urls``, or every address a
  headless Service resolves to, looked up again every ``cluster.resolve_interval_s``): a broker
  that appears gets a link, one that goes away is deregistered from (best effort) and dropped.
  Brokers share nothing, so each must hear from every balancer.
- A :class:`BrokerLink` registers once the first worker is warm (so the port is open and there
  is capacity to offer), retrying with backoff while its broker is unreachable; then heartbeats
  the live capacity at the interval that broker asked for, registers again when it answers a
  heartbeat with 404 (it restarted or dropped us), and deregisters on shutdown. Every request is
  signed with the cluster secret.
- :func:`verify_stream` accepts a websocket only with a valid broker signature over its path and
  session id, each session id once (:class:`~xtts_core.cluster.ReplayGuard`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx
from pydantic import BaseModel, ValidationError

from xtts_balancer.__about__ import __version__
from xtts_balancer.discovery import BrokerTarget, load_resolver, resolve_targets
from xtts_balancer.settings import BalancerSettings
from xtts_core.cluster import (
    DEREGISTER_PATH,
    HEARTBEAT_PATH,
    REGISTER_PATH,
    BalancerDeregistration,
    BalancerHeartbeat,
    BalancerRegistration,
    RegistrationAccepted,
    ReplayGuard,
    sign_request,
    verify_request,
)

__all__ = ["BrokerLink", "BrokerLinks", "balancer_id", "verify_stream"]

logger = logging.getLogger(__name__)

MAX_RETRY_S = 30.0


def verify_stream(
    settings: BalancerSettings, guard: ReplayGuard, path: str, headers: Mapping[str, str]
) -> str:
    """The session id of a stream the broker signed.

    Raises:
        xtts_core.cluster.OriginError: no, a stale, a wrong or a replayed signature.
    """
    cluster = settings.cluster
    assert cluster.secret is not None
    session_id = verify_request(
        cluster.secret.get_secret_value(), "GET", path, headers,
        max_skew_s=cluster.max_clock_skew_s,
    )  # fmt: skip
    guard.claim(session_id)
    return session_id


def balancer_id(settings: BalancerSettings) -> str:
    """This balancer's name at the brokers and in the session log lines: ``cluster.balancer_id``,
    else ``<hostname>:<port>``."""
    return settings.cluster.balancer_id or f"{socket.gethostname()}:{settings.service.port}"


@dataclass(frozen=True)
class _Balancer:
    """What every link says about this balancer, and how it signs."""

    balancer_id: str
    url: str
    host: str
    port: int
    instances: int
    secret: str
    retry_s: float
    capacity: Callable[[], tuple[int, int]]
    """``(idle, capacity)``: free slots and slots of warm workers."""

    @classmethod
    def from_settings(
        cls, settings: BalancerSettings, capacity: Callable[[], tuple[int, int]]
    ) -> _Balancer:
        service, cluster = settings.service, settings.cluster
        assert cluster.secret is not None
        scheme = "https" if service.tls_certfile is not None else "http"
        host = service.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.getfqdn()
        url = cluster.advertised_url or f"{scheme}://{host}:{service.port}"
        parsed = httpx.URL(url)
        return cls(
            balancer_id=balancer_id(settings),
            url=url, host=parsed.host, port=parsed.port or (443 if parsed.scheme == "https" else 80),
            instances=service.instances, secret=cluster.secret.get_secret_value(),
            retry_s=cluster.retry_interval_s, capacity=capacity,
        )  # fmt: skip


class _Loop:
    """A background loop (``_run``) started once and cancelled on the way out."""

    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        raise NotImplementedError

    async def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class BrokerLinks(_Loop):
    """This balancer's registrations at every broker; see the module docstring."""

    def __init__(self, settings: BalancerSettings, capacity: Callable[[], tuple[int, int]]) -> None:
        """``capacity()`` returns ``(idle, capacity)``: free slots and slots of warm workers."""
        cluster = settings.cluster
        self._balancer = _Balancer.from_settings(settings, capacity)
        self._urls = settings.broker_urls
        self._resolver = load_resolver(cluster.broker_resolver) if cluster.resolve_brokers else None
        self._resolve_s = cluster.resolve_interval_s
        self._client = httpx.AsyncClient(timeout=cluster.request_timeout_s)
        self.links: dict[str, BrokerLink] = {}
        """The current links by broker URL."""

    @property
    def balancer_id(self) -> str:
        return self._balancer.balancer_id

    async def stop(self) -> None:
        """Stop resolving, then stop every link (each deregisters) at once."""
        await self._cancel()
        links, self.links = list(self.links.values()), {}
        await asyncio.gather(*(link.stop() for link in links))
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            targets = await resolve_targets(self._urls, self._resolver)
            if targets is not None:
                await self._update(targets)
            if self._resolver is None:
                return  # URLs as written: nothing to look up again
            await asyncio.sleep(self._resolve_s)

    async def _update(self, targets: dict[str, BrokerTarget]) -> None:
        gone = [self.links.pop(url) for url in list(self.links) if url not in targets]
        for url, target in targets.items():
            if url not in self.links:
                logger.info("broker %s found: registering %s", target, self.balancer_id)
                link = BrokerLink(target, self._balancer, self._client)
                link.start()
                self.links[url] = link
        for link in gone:
            logger.info("broker %s is gone: deregistering %s", link.target, self.balancer_id)
        await asyncio.gather(*(link.stop() for link in gone))


class BrokerLink(_Loop):
    """This balancer's registration at one broker; see the module docstring."""

    def __init__(
        self, target: BrokerTarget, balancer: _Balancer, client: httpx.AsyncClient
    ) -> None:
        self.target = target
        self._balancer = balancer
        self._client = client
        self.registered = False

    async def stop(self) -> None:
        """Stop heartbeating and deregister (best effort: the broker's TTL covers a failure)."""
        await self._cancel()
        if self.registered:
            try:
                goodbye = BalancerDeregistration(id=self._balancer.balancer_id)
                await self._post(DEREGISTER_PATH, goodbye)
                logger.info("deregistered %s from %s", self._balancer.balancer_id, self.target)
            except httpx.HTTPError as exc:
                logger.warning("could not deregister from %s: %s", self.target, exc)
            self.registered = False

    async def _run(self) -> None:
        retry_s = self._balancer.retry_s
        interval, delay = retry_s, retry_s
        while True:
            if not self.registered:
                if self._balancer.capacity()[1] == 0:
                    # No warm worker yet: nothing to offer, and no failure to back off from, so
                    # look again soon (doubling here registered up to a warm-up time late).
                    await asyncio.sleep(retry_s)
                    continue
                reply = await self._register()
                if reply is None:
                    await asyncio.sleep(delay)
                    delay = min(2 * delay, MAX_RETRY_S)
                    continue
                interval, delay, self.registered = reply.heartbeat_interval_s, retry_s, True
            await asyncio.sleep(interval)
            await self._heartbeat()

    async def _register(self) -> RegistrationAccepted | None:
        me = self._balancer
        idle, capacity = me.capacity()
        registration = BalancerRegistration(
            id=me.balancer_id, host=me.host, port=me.port, instances=me.instances,
            url=me.url, capacity=capacity, idle=idle, version=__version__,
        )  # fmt: skip
        try:
            response = await self._post(REGISTER_PATH, registration)
            response.raise_for_status()
            reply = RegistrationAccepted.model_validate_json(response.content)
        except (httpx.HTTPError, ValidationError) as exc:
            logger.warning("registration with the broker at %s failed: %s", self.target, exc)
            return None
        logger.info(
            "registered %s at %s as %s (heartbeat every %.1f s)", me.balancer_id, self.target,
            me.url, reply.heartbeat_interval_s,
        )  # fmt: skip
        return reply

    async def _heartbeat(self) -> None:
        me = self._balancer
        idle, capacity = me.capacity()
        beat = BalancerHeartbeat(id=me.balancer_id, idle=idle, capacity=capacity)
        try:
            response = await self._post(HEARTBEAT_PATH, beat)
        except httpx.HTTPError as exc:
            logger.warning("heartbeat to %s failed: %s", self.target, exc)
            return
        if response.status_code == 404:
            logger.warning(
                "the broker forgot %s; registering again with %s", me.balancer_id, self.target
            )
            self.registered = False
        elif response.is_error:
            logger.warning(
                "heartbeat refused by %s with HTTP %d: %s", self.target, response.status_code,
                response.text,
            )  # fmt: skip

    async def _post(self, path: str, model: BaseModel) -> httpx.Response:
        body = model.model_dump_json().encode("utf-8")
        # A fresh id in every signed request: the broker accepts each signature once, so a
        # captured registration or heartbeat cannot be replayed.
        nonce = secrets.token_hex(12)
        headers = sign_request(self._balancer.secret, "POST", path, session_id=nonce, body=body)
        headers["content-type"] = "application/json"
        extensions = {}
        name = self.target.server_name
        if name is not None:
            # A resolved address: the broker still sees (and its certificate still names) the
            # configured host.
            port = httpx.URL(self.target.url).port
            headers["host"] = name if port is None else f"{name}:{port}"
            extensions["sni_hostname"] = name
        return await self._client.post(
            self.target.url + path, content=body, headers=headers, extensions=extensions
        )
