"""Broker mode (``service.standalone_mode: false``): register, heartbeat, deregister, verify.

The original registered once, before its port was open, never heartbeated and trusted a constant
header (original-spec.md §2.6-2.7). Here, with the contract of :mod:`xtts_core.cluster` that the
broker imports too:

- :class:`BrokerLink` registers once the first worker is warm (so the port is open and there is
  capacity to offer), retrying with backoff while the broker is unreachable; then heartbeats the
  live capacity at the interval the broker asked for, registers again when the broker answers a
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

import httpx
from pydantic import BaseModel, ValidationError

from xtts_balancer.__about__ import __version__
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

__all__ = ["BrokerLink", "verify_stream"]

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


class BrokerLink:
    """This balancer's registration at the broker; see the module docstring."""

    def __init__(self, settings: BalancerSettings, capacity: Callable[[], tuple[int, int]]) -> None:
        """``capacity()`` returns ``(idle, capacity)``: free slots and slots of warm workers."""
        service, cluster = settings.service, settings.cluster
        assert cluster.secret is not None and service.broker_host is not None
        self._secret = cluster.secret.get_secret_value()
        self._capacity = capacity
        self._retry_s = cluster.retry_interval_s
        self._broker = (
            cluster.broker_url or f"http://{service.broker_host}:{service.broker_port}"
        ).rstrip("/")
        self.balancer_id = cluster.balancer_id or f"{socket.gethostname()}:{service.port}"
        scheme = "https" if service.tls_certfile is not None else "http"
        host = service.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.getfqdn()
        self._url = cluster.advertised_url or f"{scheme}://{host}:{service.port}"
        parsed = httpx.URL(self._url)
        self._host = parsed.host
        self._port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self._instances = service.instances
        self._client = httpx.AsyncClient(timeout=cluster.request_timeout_s)
        self._task: asyncio.Task[None] | None = None
        self.registered = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop heartbeating and deregister (best effort: the broker's TTL covers a failure)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.registered:
            try:
                await self._post(DEREGISTER_PATH, BalancerDeregistration(id=self.balancer_id))
                logger.info("deregistered %s from the broker", self.balancer_id)
            except httpx.HTTPError as exc:
                logger.warning("could not deregister from the broker: %s", exc)
            self.registered = False
        await self._client.aclose()

    async def _run(self) -> None:
        interval, delay = self._retry_s, self._retry_s
        while True:
            if not self.registered:
                if self._capacity()[1] == 0:
                    # No warm worker yet: nothing to offer, and no failure to back off from, so
                    # look again soon (doubling here registered up to a warm-up time late).
                    await asyncio.sleep(self._retry_s)
                    continue
                reply = await self._register()
                if reply is None:
                    await asyncio.sleep(delay)
                    delay = min(2 * delay, MAX_RETRY_S)
                    continue
                interval, delay, self.registered = reply.heartbeat_interval_s, self._retry_s, True
            await asyncio.sleep(interval)
            await self._heartbeat()

    async def _register(self) -> RegistrationAccepted | None:
        idle, capacity = self._capacity()
        registration = BalancerRegistration(
            id=self.balancer_id, host=self._host, port=self._port, instances=self._instances,
            url=self._url, capacity=capacity, idle=idle, version=__version__,
        )  # fmt: skip
        try:
            response = await self._post(REGISTER_PATH, registration)
            response.raise_for_status()
            reply = RegistrationAccepted.model_validate_json(response.content)
        except (httpx.HTTPError, ValidationError) as exc:
            logger.warning("registration with the broker at %s failed: %s", self._broker, exc)
            return None
        logger.info(
            "registered %s at %s as %s (heartbeat every %.1f s)", self.balancer_id, self._broker,
            self._url, reply.heartbeat_interval_s,
        )  # fmt: skip
        return reply

    async def _heartbeat(self) -> None:
        idle, capacity = self._capacity()
        beat = BalancerHeartbeat(id=self.balancer_id, idle=idle, capacity=capacity)
        try:
            response = await self._post(HEARTBEAT_PATH, beat)
        except httpx.HTTPError as exc:
            logger.warning("heartbeat to the broker failed: %s", exc)
            return
        if response.status_code == 404:
            logger.warning("the broker forgot %s; registering again", self.balancer_id)
            self.registered = False
        elif response.is_error:
            logger.warning(
                "heartbeat refused with HTTP %d: %s", response.status_code, response.text
            )

    async def _post(self, path: str, model: BaseModel) -> httpx.Response:
        body = model.model_dump_json().encode("utf-8")
        # A fresh id in every signed request: the broker accepts each signature once, so a
        # captured registration or heartbeat cannot be replayed.
        nonce = secrets.token_hex(12)
        headers = sign_request(self._secret, "POST", path, session_id=nonce, body=body)
        headers["content-type"] = "application/json"
        return await self._client.post(self._broker + path, content=body, headers=headers)
