"""coqui's xtts-streaming-server API through a real broker to a real balancer in broker mode
(tiny checkpoint, one worker, a clip voice), both without API keys as coqui's server runs: every
route relayed in its shape, routed (the broker's routing counter) and failed over like the
ElevenLabs speech, bad latents answered by the balancer's 422, and pipecat's ``XTTSService``
unmodified but for its URL (skipped where pipecat is not installed: the ``client-pipecat`` env's
``test`` script runs it)."""

from __future__ import annotations

import base64
import io
import re
import secrets
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile
from broker_servers import SECRET, BrokerThread, eventually

from xtts_core.cluster import DEREGISTER_PATH, REGISTER_PATH, BalancerRegistration, sign_request

pytest.importorskip("xtts_balancer", reason="needs xtts-balancer (and torch) for a real balancer")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "balancer"))
from balancer_server import CLIP_VOICE, coqui_config, start_server, write_model_files
from voice_agent_clients import assert_pipecat_xtts_speaks, pipecat_modules

pytestmark = pytest.mark.timeout(180)

TEXT = "Hello there. This is the broker."


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The broker's URL, with the balancer registered and healthy."""
    thread = BrokerThread(
        cluster={"heartbeat_interval_s": 1.0, "heartbeat_ttl_s": 2.5}, auth={"enabled": False}
    )
    thread.start("wide")  # "most idle first": a registered ghost with more slots is tried first
    config = coqui_config(*write_model_files(tmp_path_factory))
    config["service"].update(
        standalone_mode=False, broker_host="127.0.0.1", broker_port=thread.port
    )
    config["workers"]["slots_per_worker"] = 2  # the broker counts a slot busy until a heartbeat
    config["cluster"] = {
        "secret": SECRET, "balancer_id": "real", "broker_url": thread.url,
        "retry_interval_s": 0.2,
    }  # fmt: skip
    server = start_server(tmp_path_factory.mktemp("coqui-broker"), config)
    try:
        server.wait_ready()
        eventually(
            lambda: httpx.get(thread.url + "/ready", timeout=10).status_code == 200,
            "the balancer to register with the broker",
        )
        yield thread.url
    finally:
        server.stop()
        thread.stop()
        print(f"--- balancer log ---\n{server.logs()}")


@pytest.fixture(scope="module")
def speakers(broker: str) -> dict[str, dict[str, Any]]:
    reply = httpx.get(broker + "/studio_speakers", timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _metric(broker: str, name: str) -> float:
    """The sum of metric ``name`` over its labels."""
    text = httpx.get(broker + "/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.M))


def _speak(broker: str, path: str, speaker: dict[str, Any], **fields: Any) -> httpx.Response:
    body = {"text": TEXT, "language": "en", **speaker, **fields}
    return httpx.post(broker + path, json=body, timeout=60)


def test_studio_speakers_and_languages_through_the_broker(
    broker: str, speakers: dict[str, dict[str, Any]]
) -> None:
    assert CLIP_VOICE in speakers
    assert set(speakers[CLIP_VOICE]) == {"speaker_embedding", "gpt_cond_latent"}
    languages = httpx.get(broker + "/languages", timeout=10)
    assert languages.status_code == 200 and "en" in languages.json()


def test_tts_stream_and_tts_are_routed_through_the_broker(
    broker: str, speakers: dict[str, dict[str, Any]]
) -> None:
    routed = _metric(broker, "xtts_broker_sessions_routed_total")
    stream = _speak(broker, "/tts_stream", speakers[CLIP_VOICE])
    assert stream.status_code == 200, stream.text
    assert stream.content[:4] == b"RIFF" and len(stream.content) > 44 + 2400
    whole = _speak(broker, "/tts", speakers[CLIP_VOICE], add_wav_header=False)
    assert whole.status_code == 200, whole.text
    samples, rate = soundfile.read(io.BytesIO(base64.b64decode(whole.json())), dtype="int16")
    assert rate == 24000 and samples.size > 2400
    assert _metric(broker, "xtts_broker_sessions_routed_total") == routed + 2


def test_clone_speaker_through_the_broker(
    broker: str, speakers: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    t = np.arange(22050 * 2) / 22050
    soundfile.write(tmp_path / "me.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 22050)
    files = {"wav_file": ("me.wav", (tmp_path / "me.wav").read_bytes(), "audio/wav")}
    reply = httpx.post(broker + "/clone_speaker", files=files, timeout=60)
    assert reply.status_code == 200, reply.text
    cloned = reply.json()
    shape = np.asarray(speakers[CLIP_VOICE]["gpt_cond_latent"]).shape
    assert np.asarray(cloned["gpt_cond_latent"]).shape == shape
    assert _speak(broker, "/tts_stream", cloned).status_code == 200


def test_bad_latents_get_the_balancers_422(
    broker: str, speakers: dict[str, dict[str, Any]]
) -> None:
    speaker = speakers[CLIP_VOICE]
    reply = _speak(
        broker, "/tts_stream", speaker, speaker_embedding=speaker["speaker_embedding"][1:]
    )
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "speaker_embedding"]


def test_failover_when_the_chosen_balancer_is_unreachable(
    broker: str, speakers: dict[str, dict[str, Any]]
) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    ghost = BalancerRegistration(id="ghost", host="127.0.0.1", port=port, capacity=8, idle=8)
    failovers = _metric(broker, "xtts_broker_failovers_total")
    _signed_post(broker, REGISTER_PATH, ghost.model_dump_json().encode())
    try:
        assert _speak(broker, "/tts_stream", speakers[CLIP_VOICE]).status_code == 200
        assert _metric(broker, "xtts_broker_failovers_total") == failovers + 1
    finally:
        _signed_post(broker, DEREGISTER_PATH, b'{"id": "ghost"}')


def _signed_post(broker: str, path: str, body: bytes) -> None:
    signed = sign_request(SECRET, "POST", path, session_id=secrets.token_hex(8), body=body)
    assert httpx.post(broker + path, content=body, headers=signed).status_code == 200


def test_pipecat_xtts_speaks_through_the_broker(broker: str) -> None:
    pipecat = pipecat_modules()
    routed = _metric(broker, "xtts_broker_sessions_routed_total")
    assert_pipecat_xtts_speaks(pipecat, broker, "Hello world. This is pipecat through the broker.")
    assert _metric(broker, "xtts_broker_sessions_routed_total") >= routed + 2  # speakers, speech
