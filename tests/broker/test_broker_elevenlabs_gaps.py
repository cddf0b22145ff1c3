"""The ElevenLabs gaps through the broker, in front of a real tone balancer in broker mode:
single-use tokens minted and checked by the broker, ``request-id`` naming the session in both
logs, the balancer's headers relayed, voice aliases and the default mp3 websocket format.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile
from broker_servers import CLIENT_KEY, SECRET, BrokerThread, eventually
from websockets.sync.client import connect

pytest.importorskip("xtts_balancer", reason="needs xtts-balancer for a real balancer")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "balancer"))
from balancer_server import CLIP_VOICE, Server, base_config, converse, join_broker, serving
from elevenlabs.client import ElevenLabs
from pyav_decode import decode

pytestmark = pytest.mark.timeout(120)

ELEVEN_ID = "21m00Tcm4TlvDq8ikWAM"
SLOTS = 2
TEXT = "Hello there."


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokerThread, Server]]:
    tmp = tmp_path_factory.mktemp("gaps-cluster")
    voices = tmp / "voices"
    voices.mkdir()
    soundfile.write(voices / f"{CLIP_VOICE}.wav", np.zeros(2205, np.float32), 22050)
    broker = BrokerThread(cluster={"heartbeat_interval_s": 0.5, "heartbeat_ttl_s": 5.0})
    broker.start("deep")
    config = base_config(Path(), voices)
    config["model"] = {
        "backend": "tone", "voices_dir": str(voices), "backend_options": {"ms_per_char": 10},
        "voice_aliases": {ELEVEN_ID: CLIP_VOICE},
    }  # fmt: skip
    config["workers"]["slots_per_worker"] = SLOTS
    join_broker(config, "tone", broker.url, broker.port, SECRET)
    (tmp / "balancer").mkdir()
    try:
        with serving(tmp / "balancer", config) as balancer:
            eventually(lambda: httpx.get(broker.url + "/ready").status_code == 200, "registration")
            yield broker, balancer
    finally:
        broker.stop()


def broker_sees_every_slot_free(broker: BrokerThread) -> bool:
    listing = httpx.get(
        broker.url + "/broker/balancers", headers={"authorization": f"Bearer {SECRET}"}
    ).json()["balancers"]
    return [(entry["idle"], entry["reserved"]) for entry in listing] == [(SLOTS, 0)]


@pytest.fixture(autouse=True)
def idle(cluster: tuple[BrokerThread, Server]) -> None:
    """Each test starts with the broker knowing the balancer idle (its heartbeat caught up)."""
    eventually(lambda: broker_sees_every_slot_free(cluster[0]), "the balancer idle", 20)


@pytest.fixture
def sdk(cluster: tuple[BrokerThread, Server]) -> Iterator[ElevenLabs]:
    with httpx.Client(timeout=30) as http:
        yield ElevenLabs(api_key=CLIENT_KEY, base_url=cluster[0].url, httpx_client=http)


def speak(broker: BrokerThread, voice: str, query: str, key: str | None = CLIENT_KEY) -> Any:
    url = f"{broker.url.replace('http', 'ws', 1)}/v1/text-to-speech/{voice}/stream-input?{query}"
    with connect(url, additional_headers={"xi-api-key": key} if key else {}) as ws:
        return converse(ws, {"text": " "}, {"text": TEXT + " "}, {"text": ""})


def test_a_broker_token_opens_one_socket_once(
    cluster: tuple[BrokerThread, Server], sdk: ElevenLabs
) -> None:
    broker, balancer = cluster
    token = sdk.tokens.single_use.create("tts_websocket").token
    query = f"output_format=pcm_16000&single_use_token={token}"
    first = speak(broker, CLIP_VOICE, query, key=None)
    assert first.close_code == 1000 and first.audio_bytes and first.error is None
    again = speak(broker, CLIP_VOICE, query, key=None)
    assert again.close_code == 1008 and again.error is not None
    assert again.error["error"] == "invalid_api_key" and "already used" in again.error["message"]
    # the balancer never mints for a broker's clients: its own endpoint wants the signature
    refused = httpx.post(
        balancer.http_url + "/v1/single-use-token/tts_websocket",
        headers={"xi-api-key": CLIENT_KEY},
    )
    assert refused.status_code == 403


def test_minting_at_the_broker_needs_a_key(cluster: tuple[BrokerThread, Server]) -> None:
    refused = httpx.post(cluster[0].url + "/v1/single-use-token/tts_websocket")
    assert refused.status_code == 401 and refused.headers["request-id"]
    assert refused.json()["detail"]["status"] == "invalid_api_key"


def test_request_id_names_the_session_at_both_ends(
    cluster: tuple[BrokerThread, Server], sdk: ElevenLabs, caplog: pytest.LogCaptureFixture
) -> None:
    broker, balancer = cluster
    caplog.set_level(logging.INFO, logger="xtts_broker")
    with sdk.text_to_speech.with_raw_response.convert(CLIP_VOICE, text=TEXT) as response:
        assert decode(b"".join(response.data)).container == "mp3"
        headers = response.headers
    request_id = headers["request-id"]
    assert f"session={request_id} client POST" in caplog.text
    assert f"session={request_id} http voice='{CLIP_VOICE}'" in balancer.logs()
    assert headers["character-cost"] == str(len(TEXT))
    assert headers["maximum-concurrent-requests"] == str(SLOTS)
    listing = httpx.get(broker.url + "/v1/voices", headers={"xi-api-key": CLIENT_KEY})
    assert listing.status_code == 200 and listing.headers["request-id"] != request_id
    assert listing.headers["current-concurrent-requests"] == "0"


def test_an_alias_and_the_mp3_default_through_the_broker(
    cluster: tuple[BrokerThread, Server], sdk: ElevenLabs
) -> None:
    broker = cluster[0]
    before = sdk.user.subscription.get().character_count
    reply = speak(broker, ELEVEN_ID, "")
    assert reply.close_code == 1000 and reply.error is None
    decoded = decode(reply.audio_bytes)
    assert (decoded.container, decoded.sample_rate) == ("mp3", 44100)
    assert sdk.voices.get(ELEVEN_ID).voice_id == CLIP_VOICE
    assert sdk.user.subscription.get().character_count == before + len(TEXT)
