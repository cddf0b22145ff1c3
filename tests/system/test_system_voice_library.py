"""One voice library for a fleet of two brokers and three balancers, all real processes.

Every balancer has its own ``voices_dir`` (nothing shared on disk) and one single-slot worker,
and is given both brokers' URLs. A voice is added through broker ``a`` (the SDK's multipart form, sent with httpx: the
system env does not install the SDK; tests/broker/test_broker_voices.py uses the SDK itself);
then as many streams as there are balancers, opened together through broker ``b``, must take
every balancer once (each balancer's own ``xtts_sessions_total`` says which served), so every
balancer spoke the voice. A balancer started later is routed to by both brokers only once it holds
the voice, and then serves it too. The voice is deleted through ``b`` while one balancer is
away; when that balancer comes back with the voice still in its folder, the fleet's tombstones
win: afterwards the voice is 404 at every balancer and through both brokers.
"""

from __future__ import annotations

import asyncio
import io
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
from broker_servers import SECRET
from fleet import CLIENT_KEY, BrokerProcess, Fleet, eventually

from xtts_core.cluster import sign_request

pytestmark = pytest.mark.timeout(300)

MS_PER_CHAR = 20.0
TEXT = "Every balancer speaks the fleet's voice for a little while."
HEADERS = {"xi-api-key": CLIENT_KEY}


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Fleet, BrokerProcess, BrokerProcess]]:
    """Brokers ``a`` and ``b``, balancers ``north``, ``south`` and ``east`` registered with both."""
    shared = tmp_path / "voices"  # unused: every balancer is given its own folder
    shared.mkdir()
    fleet = Fleet(tmp_path, shared)
    a = fleet.broker
    b = BrokerProcess(_folder(tmp_path, "broker-b"))
    try:
        a.start()
        b.start()
        for name in ("north", "south", "east"):
            start(fleet, a, b, name)
        for broker in (a, b):
            eventually(lambda r=broker: ready(fleet, r) == set(fleet.balancers), "all ready", 180)
        eventually(fleet.at_rest, "the balancers idle", 30)
        yield fleet, a, b
    finally:
        fleet.seen_pids.update([b.process.pid] if b.process is not None else [])
        fleet.stop()
        b.stop()
    assert fleet.survivors() == [], "processes outlived the fleet"
    assert fleet.tracebacks() == [], "tracebacks in the fleet's logs"


def _folder(parent: Path, name: str) -> Path:
    folder = parent / name
    folder.mkdir(exist_ok=True)
    return folder


def start(fleet: Fleet, a: BrokerProcess, b: BrokerProcess, name: str) -> None:
    """Balancer ``name`` with its own library (kept across restarts), registered with both."""
    fleet.start_balancer(
        name, workers=1, slots=1, tone_ms_per_char=MS_PER_CHAR,
        cluster={"broker_urls": [a.url, b.url]}, voices=library(fleet, name),
    )  # fmt: skip


def library(fleet: Fleet, name: str) -> Path:
    return _folder(fleet.directory, f"{name}-library")


def ready(fleet: Fleet, broker: BrokerProcess) -> set[str]:
    """The balancers ``broker`` routes to: healthy and holding the fleet's voices."""
    try:
        listing = fleet.listing(broker)
    except httpx.HTTPError:
        return set()
    return {n for n, e in listing.items() if e["health"] == "healthy" and e["voices_ready"]}


async def _speak_together(base: str, voice_id: str, count: int) -> list[tuple[int, int]]:
    """``count`` streamed speech requests for ``voice_id`` through ``base`` at once:
    ``(status, audio bytes)`` of each."""
    url = f"{base}/v1/text-to-speech/{voice_id}/stream?output_format=pcm_16000"

    async def one(http: httpx.AsyncClient) -> tuple[int, int]:
        response = await http.post(url, json={"text": TEXT}, headers=HEADERS)
        return response.status_code, len(response.content)

    async with httpx.AsyncClient(timeout=60) as http:
        return list(await asyncio.gather(*(one(http) for _ in range(count))))


def speak_on_every_balancer(fleet: Fleet, broker: BrokerProcess, voice_id: str) -> None:
    before = fleet.sessions_served()
    answers = asyncio.run(_speak_together(broker.url, voice_id, len(fleet.balancers)))
    assert all(status == 200 and size > 0 for status, size in answers), (answers, fleet.logs())
    after = fleet.sessions_served()
    assert {n: after[n] - before[n] for n in fleet.balancers} == dict.fromkeys(fleet.balancers, 1)
    eventually(fleet.at_rest, "the balancers idle again", 30)


def direct_status(fleet: Fleet, name: str, voice_id: str) -> int:
    """``GET /v1/voices/{voice_id}`` at balancer ``name`` itself, signed as a broker signs."""
    path = f"/v1/voices/{voice_id}"
    headers = sign_request(SECRET, "GET", path, session_id=secrets.token_hex(8))
    return httpx.get(fleet.balancers[name].http_url + path, headers=headers, timeout=10).status_code


def reference_wav() -> bytes:
    t = np.arange(16000) / 16000
    out = io.BytesIO()
    soundfile.write(
        out, (0.3 * np.sin(2 * np.pi * 260 * t)).astype(np.float32), 16000, format="WAV"
    )
    return out.getvalue()


def test_a_voice_added_through_one_broker_is_spoken_everywhere_and_deleted_everywhere(
    fleet: tuple[Fleet, BrokerProcess, BrokerProcess],
) -> None:
    fleet_, a, b = fleet
    added = httpx.post(
        a.url + "/v1/voices/add", headers=HEADERS, data={"name": "Fleet voice"},
        files=[("files", ("ref.wav", reference_wav(), "audio/wav"))], timeout=60,
    )  # fmt: skip
    assert added.status_code == 200, added.text
    voice_id = added.json()["voice_id"]
    for name in fleet_.balancers:
        assert (library(fleet_, name) / f"{voice_id}.wav").is_file(), name
    assert through(b, voice_id).json()["name"] == "Fleet voice"
    speak_on_every_balancer(fleet_, b, voice_id)

    # A balancer started later is routed to only once it holds the voice; then it serves it.
    start(fleet_, a, b, "late")
    for broker in (a, b):
        eventually(lambda r=broker: "late" in ready(fleet_, r), "late in rotation", 180)
    assert (library(fleet_, "late") / f"{voice_id}.wav").is_file()
    eventually(fleet_.at_rest, "the balancers idle", 30)
    speak_on_every_balancer(fleet_, b, voice_id)

    # Deleted through b while "east" is away: when it returns, its copy does not come back.
    fleet_.remove("east")
    for broker in (a, b):
        eventually(lambda r=broker: "east" not in fleet_.listing(r), "east gone", 30)
    assert (library(fleet_, "east") / f"{voice_id}.wav").is_file()
    deleted = httpx.delete(f"{b.url}/v1/voices/{voice_id}", headers=HEADERS, timeout=30)
    assert deleted.status_code == 200 and deleted.json() == {"status": "ok"}
    start(fleet_, a, b, "east")
    for broker in (a, b):
        eventually(lambda r=broker: "east" in ready(fleet_, r), "east back in rotation", 180)
    for name in fleet_.balancers:
        assert not (library(fleet_, name) / f"{voice_id}.wav").exists(), name
        assert (library(fleet_, name) / f"{voice_id}.deleted.json").is_file(), name
        assert direct_status(fleet_, name, voice_id) == 404, name
    for broker in (a, b):
        for _ in fleet_.balancers:  # listings go to any balancer: none has it
            assert through(broker, voice_id).status_code == 404, broker.url
            listed = httpx.get(broker.url + "/v1/voices", headers=HEADERS, timeout=10).json()
            assert voice_id not in {v["voice_id"] for v in listed["voices"]}


def through(broker: BrokerProcess, voice_id: str) -> httpx.Response:
    return httpx.get(f"{broker.url}/v1/voices/{voice_id}", headers=HEADERS, timeout=10)
