"""Keeps the voice libraries of every healthy balancer equal, so any balancer speaks any voice.

The balancers' libraries are the record; a broker holds no voice of its own, so every broker
replica can do this at once and a restarted broker has nothing to recover. One pass
(:meth:`VoiceSync.sync`) reads each healthy balancer's manifest (``GET /cluster/voices``), takes
the newest record of every voice id (:func:`xtts_core.cluster_voices.newest`: last writer wins,
a delete wins a tie) and repairs each balancer that differs: a missing or older voice is copied
from a balancer that holds the winning one (``GET`` then ``PUT /cluster/voices/{id}``), a voice
deleted elsewhere later than it was added here is deleted with the same time, leaving a tombstone.
Every request is signed with the cluster secret, the body included, under a fresh nonce.

Passes run every ``voices.sync_interval_s``, straight after a voice is added or deleted through
this broker, and when a balancer registers: :meth:`VoiceSync.admit` takes it out of rotation
(:attr:`~xtts_broker.registry.BalancerEntry.voices_ready`) until a pass has given it the fleet's
voices, and the registration waits up to ``voices.admit_timeout_s`` for that. A balancer
whose manifest cannot be read (it answers 404: no library endpoint, or it is unreachable) has
nothing to be given and is routed to as before; an unreachable one fails its routing anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass

import httpx
from pydantic import ValidationError

from xtts_broker.registry import BalancerEntry, Health, Registry
from xtts_broker.settings import BrokerSettings
from xtts_core.cluster import sign_request
from xtts_core.cluster_voices import (
    CLUSTER_VOICES_PATH,
    VOICE_META_HEADER,
    VoiceDeletion,
    VoiceManifest,
    VoiceRecord,
    newest,
)

__all__ = ["VoiceSync"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Copy:
    """A voice's clip as one balancer stores it, to put on the others."""

    wav: bytes
    meta: str
    """The :data:`~xtts_core.cluster_voices.VOICE_META_HEADER` value."""


class VoiceSync:
    """One broker's keeper of the fleet's voice library (see the module docstring)."""

    def __init__(self, settings: BrokerSettings, registry: Registry, http: httpx.AsyncClient):
        self._settings = settings
        self._registry = registry
        self._http = http
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._admitting: set[asyncio.Task[None]] = set()

    # --- triggers ---------------------------------------------------------------------------------

    async def admit(self, entry: BalancerEntry) -> None:
        """Hold ``entry`` out of rotation until it has the fleet's voices; wait a while for it."""
        entry.voices_ready = False
        task = asyncio.create_task(self.sync())
        self._admitting.add(task)  # held until done: a pass outlives a registration that timed out
        task.add_done_callback(self._admitting.discard)
        try:
            await asyncio.wait_for(asyncio.shield(task), self._settings.voices.admit_timeout_s)
        except TimeoutError:
            logger.info(
                "balancer %s is still receiving the fleet's voices; routed to once it has them",
                entry.id,
            )

    def kick(self) -> None:
        """Run a pass soon (a voice was added or deleted through this broker)."""
        self._wake.set()

    async def run(self) -> None:
        """Passes every ``voices.sync_interval_s``, or sooner after :meth:`kick`, until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.voices.sync_interval_s)
            self._wake.clear()
            try:
                await self.sync()
            except Exception:  # a pass must never end the loop; the next one tries again
                logger.exception("voice sync pass failed")

    # --- one pass ---------------------------------------------------------------------------------

    async def sync(self) -> None:
        """One pass over the healthy balancers (module docstring); passes never overlap."""
        async with self._lock:
            registry = self._registry
            entries = [e for e in registry.entries() if registry.health(e) is Health.HEALTHY]
            read = await asyncio.gather(*(self._manifest(e) for e in entries))
            manifests = {e.id: m for e, m in zip(entries, read, strict=True) if m is not None}
            for entry, manifest in zip(entries, read, strict=True):
                if manifest is None:
                    entry.voices_ready = True  # nothing it could be given (module docstring)
            held = [e for e in entries if e.id in manifests]
            records = [r for m in manifests.values() for r in m.values()]
            failed: set[str] = set()
            for voice_id, winner in sorted(newest(records).items()):
                behind = [e for e in held if manifests[e.id].get(voice_id) != winner]
                if not behind:
                    continue
                if winner.state == "deleted":
                    done = await asyncio.gather(*(self._delete(e, winner) for e in behind))
                else:
                    sources = [e for e in held if manifests[e.id].get(voice_id) == winner]
                    done = await self._copy(voice_id, sources, behind)
                failed.update(e.id for e, ok in zip(behind, done, strict=True) if not ok)
            for entry in held:
                if entry.id not in failed and not entry.voices_ready:
                    entry.voices_ready = True
                    logger.info("balancer %s has the fleet's voices; routing to it", entry.id)

    async def _copy(
        self, voice_id: str, sources: list[BalancerEntry], targets: list[BalancerEntry]
    ) -> list[bool]:
        """Put ``voice_id`` from the first source that gives it on every target."""
        path = f"{CLUSTER_VOICES_PATH}/{voice_id}"
        for source in sources:
            response = await self._request(source, "GET", path)
            if response is not None and response.status_code == 200:
                copy = _Copy(response.content, response.headers.get(VOICE_META_HEADER, ""))
                break
        else:
            logger.warning("no balancer gave voice %s; copying it later", voice_id)
            return [False] * len(targets)
        return list(await asyncio.gather(*(self._put(t, voice_id, copy) for t in targets)))

    async def _put(self, target: BalancerEntry, voice_id: str, copy: _Copy) -> bool:
        path = f"{CLUSTER_VOICES_PATH}/{voice_id}"
        response = await self._request(
            target, "PUT", path, copy.wav, {VOICE_META_HEADER: copy.meta}
        )
        if response is None or response.status_code != 200:
            return False
        logger.info("voice %s copied to balancer %s", voice_id, target.id)
        return True

    async def _delete(self, target: BalancerEntry, winner: VoiceRecord) -> bool:
        path = f"{CLUSTER_VOICES_PATH}/{winner.voice_id}"
        body = VoiceDeletion(at=winner.at).model_dump_json().encode("utf-8")
        response = await self._request(
            target, "DELETE", path, body, {"content-type": "application/json"}
        )
        if response is None or response.status_code != 200:
            return False
        if b'"deleted"' in response.content:
            logger.info("voice %s deleted on balancer %s, as elsewhere", winner.voice_id, target.id)
        return True

    async def _manifest(self, entry: BalancerEntry) -> dict[str, VoiceRecord] | None:
        """``entry``'s records by voice id; ``None`` when it has none to give (logged)."""
        response = await self._request(entry, "GET", CLUSTER_VOICES_PATH)
        if response is None:
            return None
        if response.status_code != 200:
            logger.info(
                "balancer %s keeps no fleet voice library (HTTP %d)", entry.id,
                response.status_code,
            )  # fmt: skip
            return None
        try:
            manifest = VoiceManifest.model_validate_json(response.content)
        except ValidationError as exc:
            logger.warning("balancer %s sent an invalid voice manifest: %s", entry.id, exc)
            return None
        return {record.voice_id: record for record in manifest.voices}

    async def _request(
        self, entry: BalancerEntry, method: str, path: str, body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response | None:  # fmt: skip
        """A signed cluster request to ``entry``; ``None`` (logged) when it got no answer."""
        secret = self._settings.cluster.secret.get_secret_value()
        signed = sign_request(secret, method, path, session_id=secrets.token_hex(12), body=body)
        signed.update(headers or {})
        routing = self._settings.routing
        timeout = httpx.Timeout(routing.read_timeout_s, connect=routing.connect_timeout_s)
        try:
            return await self._http.request(
                method, entry.registration.base_url + path, content=body, headers=signed,
                timeout=timeout,
            )  # fmt: skip
        except httpx.HTTPError as exc:
            logger.warning("voice sync: %s %s at %s failed: %s", method, path, entry.id, exc)
            return None
