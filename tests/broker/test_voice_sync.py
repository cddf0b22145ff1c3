"""The broker's voice sync (xtts_broker.voice_sync) against scripted balancer libraries.

Each stand-in is a real Starlette app under Hypercorn on 127.0.0.1 that serves the balancer's
``/cluster/voices`` contract from an in-memory library and accepts only requests signed with the
cluster secret, body included, so the broker's signing is checked on every call. The real
registry decides what is routable.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from broker_servers import SECRET, make_settings, serve_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from xtts_broker.registry import BalancerEntry, Registry
from xtts_broker.voice_sync import VoiceSync
from xtts_core.cluster import BalancerRegistration, verify_request
from xtts_core.cluster_voices import (
    VOICE_META_HEADER,
    VoiceDeletion,
    VoiceManifest,
    VoiceMeta,
    VoiceRecord,
    decode_meta,
    encode_meta,
)


@dataclass
class Library:
    """One stand-in balancer's library: records, clips, and whether it accepts copies."""

    records: dict[str, VoiceRecord] = field(default_factory=dict)
    clips: dict[str, bytes] = field(default_factory=dict)
    refuse_copies: bool = False

    def present(self, voice_id: str, at: float) -> None:
        self.records[voice_id] = VoiceRecord(voice_id=voice_id, state="present", at=at)
        self.clips[voice_id] = f"clip of {voice_id}".encode()

    def deleted(self, voice_id: str, at: float) -> None:
        self.records[voice_id] = VoiceRecord(voice_id=voice_id, state="deleted", at=at)
        self.clips.pop(voice_id, None)

    def state(self) -> dict[str, tuple[str, float]]:
        return {v: (r.state, r.at) for v, r in sorted(self.records.items())}

    def app(self) -> Starlette:
        async def manifest(request: Request) -> Response:
            await self._verify(request)
            return JSONResponse(VoiceManifest(voices=list(self.records.values())).model_dump())

        async def voice(request: Request) -> Response:
            body = await self._verify(request)
            voice_id = request.path_params["voice_id"]
            if request.method == "GET":
                at = self.records[voice_id].at
                meta = encode_meta(VoiceMeta(name=voice_id, changed_at=at))
                return Response(self.clips[voice_id], headers={VOICE_META_HEADER: meta})
            if request.method == "PUT":
                if self.refuse_copies:
                    return JSONResponse({"detail": "disk full"}, status_code=500)
                self.present(voice_id, decode_meta(request.headers[VOICE_META_HEADER]).changed_at)
                assert body == f"clip of {voice_id}".encode()
                return JSONResponse({"status": "stored"})
            self.deleted(voice_id, VoiceDeletion.model_validate_json(body).at)
            return JSONResponse({"status": "deleted"})

        return Starlette(
            routes=[
                Route("/cluster/voices", manifest),
                Route("/cluster/voices/{voice_id}", voice, methods=["GET", "PUT", "DELETE"]),
            ]
        )

    @staticmethod
    async def _verify(request: Request) -> bytes:
        body = await request.body()
        verify_request(SECRET, request.method, request.url.path, request.headers, body=body)
        return body


@contextlib.asynccontextmanager
async def fleet(
    libraries: dict[str, Library | None],
) -> AsyncIterator[tuple[VoiceSync, Registry, dict[str, BalancerEntry]]]:
    """The libraries served and registered (``None``: a balancer without the endpoints)."""
    settings = make_settings()
    registry = Registry(settings.cluster)
    entries: dict[str, BalancerEntry] = {}
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient())
        for name, library in libraries.items():
            app = library.app() if library is not None else Starlette()
            port = await stack.enter_async_context(serve_app(app))
            registration = BalancerRegistration(id=name, host="127.0.0.1", port=port, capacity=1)
            entries[name] = registry.register(registration)
        yield VoiceSync(settings, registry, http), registry, entries


def routable(registry: Registry) -> set[str]:
    return {entry.id for entry in registry.routable()}


@pytest.mark.anyio
async def test_a_registering_balancer_is_routed_to_only_once_it_has_the_voices() -> None:
    old, new = Library(), Library(refuse_copies=True)
    old.present("v1", 10.0)
    async with fleet({"old": old, "new": new}) as (sync, registry, entries):
        await sync.admit(entries["new"])  # its copy fails: it stays out of rotation
        assert not entries["new"].voices_ready and routable(registry) == {"old"}
        assert new.state() == {}
        new.refuse_copies = False
        await sync.sync()
        assert new.state() == {"v1": ("present", 10.0)} and new.clips["v1"] == b"clip of v1"
        assert entries["new"].voices_ready and routable(registry) == {"old", "new"}


@pytest.mark.anyio
async def test_the_newest_add_or_delete_of_each_voice_wins_everywhere() -> None:
    east, west, north = Library(), Library(), Library()
    east.present("gone", 10.0)  # east was away when west deleted it
    west.deleted("gone", 20.0)
    east.present("back", 30.0)  # added again after a delete: the add is newer
    west.deleted("back", 20.0)
    east.present("tied", 40.0)  # the same time: the delete wins
    west.deleted("tied", 40.0)
    async with fleet({"east": east, "west": west, "north": north}) as (sync, _, _):
        await sync.sync()
    expected = {"back": ("present", 30.0), "gone": ("deleted", 20.0), "tied": ("deleted", 40.0)}
    assert east.state() == west.state() == north.state() == expected
    assert set(east.clips) == set(west.clips) == set(north.clips) == {"back"}


@pytest.mark.anyio
async def test_a_balancer_without_the_library_endpoints_is_routed_to_as_before() -> None:
    library = Library()
    library.present("v1", 5.0)
    async with fleet({"plain": None, "full": library}) as (sync, registry, entries):
        await sync.admit(entries["plain"])
        assert entries["plain"].voices_ready and routable(registry) == {"plain", "full"}
        assert library.state() == {"v1": ("present", 5.0)}
