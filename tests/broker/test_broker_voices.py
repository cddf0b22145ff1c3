"""One voice library for the fleet: voices added and deleted through the broker
(xtts_broker.voice_api), kept equal on every balancer (xtts_broker.voice_sync).

A real broker (in a thread) and real balancers in broker mode (subprocesses, the tone backend),
each with its own ``voices_dir``: nothing is shared but the broker. What each balancer holds is
read from its own folder and proved by speaking the voice at that balancer directly, with the
broker's signature (the test holds the cluster secret).
"""

from __future__ import annotations

import io
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile
from broker_servers import CLIENT_KEY, SECRET, BrokerThread, eventually
from elevenlabs.client import ElevenLabs
from elevenlabs.core.api_error import ApiError

from xtts_core.cluster import sign_request

pytest.importorskip("xtts_balancer", reason="needs xtts-balancer for real balancers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "balancer"))
from balancer_server import Server, base_config, join_broker, start_server

from xtts_balancer.voice_store import content_id

pytestmark = pytest.mark.timeout(180)

HEADERS = {"xi-api-key": CLIENT_KEY}
UPLOAD_LIMIT = 256 * 1024


def wav_bytes(freq: float, seconds: float = 1.0, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    out = io.BytesIO()
    soundfile.write(
        out, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, format="WAV"
    )
    return out.getvalue()


def add(client: ElevenLabs, name: str, freq: float) -> str:
    """The id of a voice ``name`` added through the broker with the SDK from a ``freq`` tone."""
    files = [("ref.wav", wav_bytes(freq), "audio/wav")]
    return client.voices.ivc.create(name=name, files=files).voice_id


class Fleet:
    """The broker and its tone balancers by name, each balancer with its own library."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.broker = BrokerThread(
            cluster={"heartbeat_interval_s": 0.5, "heartbeat_ttl_s": 1.5},
            voices={"sync_interval_s": 0.5, "max_upload_bytes": UPLOAD_LIMIT},
        )
        self.broker.start("wide")
        self.servers: dict[str, Server] = {}

    def library(self, name: str) -> Path:
        path = self.root / name / "voices"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(self, name: str) -> None:
        """Balancer ``name`` (again, with the library it had), registered and in rotation."""
        config: dict[str, Any] = base_config(self.root, self.library(name))
        config["model"] = {"backend": "tone", "voices_dir": str(self.library(name))}
        join_broker(config, name, self.broker.url, self.broker.port, SECRET)
        directory = self.root / name / f"run-{secrets.token_hex(3)}"
        directory.mkdir()
        self.servers[name] = start_server(directory, config)
        eventually(lambda: self.routable(name), f"{name} in rotation", 60)

    def stop(self, name: str) -> None:
        self.servers.pop(name).stop()
        eventually(lambda: name not in self.listing(), f"{name} deregistered")

    def listing(self) -> dict[str, dict[str, Any]]:
        response = httpx.get(
            self.broker.url + "/broker/balancers", headers={"authorization": f"Bearer {SECRET}"}
        )
        return {entry["id"]: entry for entry in response.json()["balancers"]}

    def routable(self, name: str) -> bool:
        entry = self.listing().get(name, {})
        return entry.get("health") == "healthy" and entry.get("voices_ready") is True

    def direct(self, name: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``path`` at balancer ``name`` itself, signed as the broker signs."""
        headers = sign_request(SECRET, method, path, session_id=secrets.token_hex(8))
        url = self.servers[name].http_url + path
        return httpx.request(method, url, headers=headers, timeout=30, **kwargs)

    def speaks(self, name: str, voice_id: str) -> int:
        """The status of speech in ``voice_id`` at balancer ``name`` (audio checked on 200)."""
        response = self.direct(
            name, "POST", f"/v1/text-to-speech/{voice_id}", json={"text": "Hi."},
            params={"output_format": "pcm_16000"},
        )  # fmt: skip
        assert response.status_code != 200 or len(response.content) > 0
        return response.status_code

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.broker.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path_factory.mktemp("voice-fleet"))
    try:
        for name in ("east", "west"):
            fleet.start(name)
        yield fleet
    finally:
        fleet.close()
        for name in ("east", "west", "late"):
            log = fleet.root / name
            for path in sorted(log.glob("run-*/server.log")):
                print(f"--- {path.relative_to(fleet.root)} ---\n{path.read_text()[-3000:]}")


@pytest.fixture
def client(fleet: Fleet) -> Iterator[ElevenLabs]:
    with httpx.Client(timeout=60) as http:
        yield ElevenLabs(api_key=CLIENT_KEY, base_url=fleet.broker.url, httpx_client=http)


def test_sdk_adds_a_voice_on_every_balancer_and_deletes_it_everywhere(
    fleet: Fleet, client: ElevenLabs
) -> None:
    audio = wav_bytes(220)
    created = client.voices.ivc.create(name="Fleet voice", files=[("ref.wav", audio, "audio/wav")])
    voice_id = created.voice_id
    assert voice_id == content_id([audio])  # the same id on every balancer, by construction
    for name in ("east", "west"):
        assert (fleet.library(name) / f"{voice_id}.wav").is_file()
        assert fleet.speaks(name, voice_id) == 200
    assert client.voices.get(voice_id).name == "Fleet voice"
    pcm = b"".join(client.text_to_speech.convert(voice_id, text="Hi.", output_format="pcm_16000"))
    assert len(pcm) > 0
    again = client.voices.ivc.create(name="Renamed", files=[("x.wav", audio, "audio/wav")])
    assert again.voice_id == voice_id  # re-adding is idempotent: only the name changes
    eventually(lambda: client.voices.get(voice_id).name == "Renamed", "the new name")

    assert client.voices.delete(voice_id).status == "ok"
    for name in ("east", "west"):
        assert sorted(p.name for p in fleet.library(name).glob(f"{voice_id}*")) == [
            f"{voice_id}.deleted.json"
        ]
        assert fleet.speaks(name, voice_id) == 404
        assert fleet.direct(name, "GET", f"/v1/voices/{voice_id}").status_code == 404
    with pytest.raises(ApiError) as gone:
        client.voices.get(voice_id)
    assert gone.value.status_code == 404
    with pytest.raises(ApiError) as twice:
        client.voices.delete(voice_id)
    assert twice.value.status_code == 404


def test_a_balancer_registering_later_gets_the_voices_before_it_is_routed_to(
    fleet: Fleet, client: ElevenLabs
) -> None:
    voice_id = add(client, "Early", 330)
    try:
        fleet.start("late")  # returns once "late" is in rotation: it must hold the voice by then
        assert (fleet.library("late") / f"{voice_id}.wav").is_file()
        assert fleet.speaks("late", voice_id) == 200
        assert fleet.direct("late", "GET", f"/v1/voices/{voice_id}").json()["name"] == "Early"
    finally:
        assert client.voices.delete(voice_id).status == "ok"
    for name in ("east", "west", "late"):
        assert not (fleet.library(name) / f"{voice_id}.wav").exists()
    fleet.stop("late")


def test_a_voice_deleted_while_a_balancer_was_away_does_not_come_back(
    fleet: Fleet, client: ElevenLabs
) -> None:
    voice_id = add(client, "Brief", 440)
    fleet.stop("west")  # its library keeps the voice while it is away
    assert (fleet.library("west") / f"{voice_id}.wav").is_file()
    assert client.voices.delete(voice_id).status == "ok"
    fleet.start("west")
    assert not (fleet.library("west") / f"{voice_id}.wav").exists()
    assert fleet.speaks("west", voice_id) == 404
    assert not (fleet.library("east") / f"{voice_id}.wav").exists()
    for _ in range(3):  # listings go to any balancer: none of them lists it
        assert voice_id not in {v.voice_id for v in client.voices.get_all().voices}


def test_uploads_keep_their_auth_and_limits(fleet: Fleet) -> None:
    url = fleet.broker.url + "/v1/voices/add"
    files = {"files": ("a.wav", wav_bytes(550), "audio/wav")}
    assert httpx.post(url, data={"name": "x"}, files=files).status_code == 401
    big = {"files": ("big.wav", wav_bytes(550, seconds=10), "audio/wav")}  # > UPLOAD_LIMIT
    too_big = httpx.post(url, data={"name": "x"}, files=big, headers=HEADERS)
    assert too_big.status_code == 413
    assert too_big.json()["detail"]["status"] == "payload_too_large"
    noise = {"files": ("noise.wav", b"RIFF not really audio", "audio/wav")}
    refused = httpx.post(url, data={"name": "x"}, files=noise, headers=HEADERS, timeout=30)
    assert refused.status_code == 422, refused.text  # the balancer's answer, relayed
    assert "not audio" in refused.text
    for name in ("east", "west"):
        assert not list(fleet.library(name).glob("*.wav"))  # nothing stored anywhere
    gone = httpx.delete(fleet.broker.url + "/v1/voices/nobody", headers=HEADERS)
    assert gone.status_code == 404 and gone.json()["detail"]["status"] == "voice_not_found"


def test_cluster_voice_endpoints_take_only_the_brokers_signature(fleet: Fleet) -> None:
    server = fleet.servers["east"]
    path = "/cluster/voices"
    assert httpx.get(server.http_url + path).status_code == 401
    forged = sign_request("not-the-cluster-secret-000", "GET", path, session_id="n1")
    assert httpx.get(server.http_url + path, headers=forged).status_code == 401
    signed = sign_request(SECRET, "GET", path, session_id=secrets.token_hex(8))
    assert httpx.get(server.http_url + path, headers=signed).status_code == 200
    replayed = httpx.get(server.http_url + path, headers=signed)
    assert replayed.status_code == 401 and "already used" in replayed.json()["detail"]
    body = b"not a clip"
    put = f"{path}/abc123"
    headers = sign_request(SECRET, "PUT", put, session_id=secrets.token_hex(8), body=body)
    no_meta = httpx.put(server.http_url + put, content=body, headers=headers)
    assert no_meta.status_code == 422 and "x-xtts-voice-meta" in no_meta.text
    altered = sign_request(SECRET, "PUT", put, session_id=secrets.token_hex(8), body=body)
    tampered = httpx.put(server.http_url + put, content=body + b"!", headers=altered)
    assert tampered.status_code == 401  # the signature covers the body
    assert not list(fleet.library("east").glob("abc123*"))
