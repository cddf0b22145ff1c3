"""Text markup and switches through the broker to a real balancer: ``<break>`` silence and
``apply_text_normalization: off`` over HTTP with the official SDK, and a first stream-input
message that carries its key and text over a websocket (the broker finds the key in it)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from broker_servers import CLIENT_KEY
from elevenlabs.client import ElevenLabs
from elevenlabs.core.api_error import ApiError
from test_broker_http import broker  # noqa: F401  (the module's real broker and balancer)
from websockets.sync.client import connect

pytest.importorskip("xtts_balancer", reason="needs xtts-balancer (and torch) for a real balancer")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "balancer"))
from balancer_server import CLIP_VOICE, read_until_closed
from test_text_markup import silences

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def client(broker: str) -> Iterator[ElevenLabs]:  # noqa: F811
    with httpx.Client(timeout=60) as http:
        yield ElevenLabs(api_key=CLIENT_KEY, base_url=broker, httpx_client=http)


def test_sdk_break_and_normalisation_off_through_the_broker(client: ElevenLabs) -> None:
    pcm = b"".join(client.text_to_speech.convert(
        CLIP_VOICE, text='Before. <break time="1s"/> After.', output_format="pcm_16000",
    ))  # fmt: skip
    lengths = [length for _, length in silences(np.frombuffer(pcm, "<i2"), 16000, 0, 500)]
    assert len(lengths) == 1 and 995 <= lengths[0] <= 1030
    with pytest.raises(ApiError) as info:
        b"".join(client.text_to_speech.convert(
            CLIP_VOICE, text="%", output_format="pcm_16000", apply_text_normalization="off"
        ))  # fmt: skip
    assert info.value.status_code == 422 and "nothing to speak" in str(info.value.body)


def test_first_message_with_key_and_text_through_the_broker(broker: str) -> None:  # noqa: F811
    url = broker.replace("http://", "ws://")
    path = f"/v1/text-to-speech/{CLIP_VOICE}/stream-input?output_format=pcm_16000"
    with connect(url + path, open_timeout=10) as ws:
        ws.send(json.dumps({
            "text": 'Spoken at once. <break time="500ms"/> ', "xi_api_key": CLIENT_KEY,
            "voice_settings": {"stability": 0.4}, "flush": True,
        }))  # fmt: skip
        ws.send(json.dumps({"text": ""}))
        reply = read_until_closed(ws)
    assert reply.close_code == 1000, reply.messages
    chars = "".join("".join(m["alignment"]["chars"]) for m in reply.audio if m["alignment"])
    assert chars == "Spoken at once. "
    lengths = [
        length for _, length in silences(np.frombuffer(reply.audio_bytes, "<i2"), 16000, 0, 300)
    ]
    assert len(lengths) == 1 and 495 <= lengths[0] <= 530
