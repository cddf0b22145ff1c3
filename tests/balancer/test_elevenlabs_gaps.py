"""What ElevenLabs clients expect beyond the speech protocol, against real tone-backend balancers:
voice-id aliases and the default-voice fallback, the websocket's default ``output_format``, the
answer headers, ElevenLabs' error statuses, single-use websocket tokens and the subscription's
character count. The official ``elevenlabs`` SDK is the client wherever it has a call.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile
from balancer_server import CLIP_VOICE, KEY, Server, base_config, converse, serving
from elevenlabs.client import ElevenLabs
from elevenlabs.core.api_error import ApiError
from pyav_decode import decode
from websockets.sync.client import connect

ELEVEN_ID = "21m00Tcm4TlvDq8ikWAM"
ALIASES = {ELEVEN_ID: CLIP_VOICE, "Rachel": CLIP_VOICE}
BOS = {"text": " "}
EOS = {"text": ""}
TEXT = "Hello there."
HEADERS = {"xi-api-key": KEY}


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gap-voices")
    soundfile.write(folder / f"{CLIP_VOICE}.wav", np.zeros(2205, np.float32), 22050)
    return folder


def tone_config(voices: Path, **model: Any) -> dict[str, Any]:
    """Two slots on the fast tone backend; a socket holds its slot from its first message."""
    config = base_config(Path(), voices)
    config["model"] = {
        "backend": "tone", "voices_dir": str(voices), "voice_aliases": ALIASES,
        "backend_options": {"ms_per_char": 10}, **model,
    }  # fmt: skip
    config["workers"]["slots_per_worker"] = 2
    config["queue"]["slot_lease"] = "session"
    return config


@pytest.fixture(scope="module")
def strict(voices: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The defaults: no fallback, mp3 on the websockets, 15-minute tokens."""
    with serving(tmp_path_factory.mktemp("strict"), tone_config(voices)) as server:
        yield server


@pytest.fixture(scope="module")
def lenient(voices: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The fallback on, the old pcm_24000 websocket default, one-second tokens."""
    config = tone_config(voices, unknown_voice_fallback=True)
    config["stream"]["default_output_format"] = "pcm_24000"
    config["auth"]["single_use_token_ttl_s"] = 1.0
    with serving(tmp_path_factory.mktemp("lenient"), config) as server:
        yield server


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture
def sdk(http: httpx.Client) -> Callable[[Server], ElevenLabs]:
    """The official SDK pointed at a server."""
    return lambda server: ElevenLabs(api_key=KEY, base_url=server.http_url, httpx_client=http)


def speak_ws(
    server: Server, voice: str, query: str = "output_format=pcm_16000", *,
    endpoint: str = "stream-input", key: str | None = KEY,
) -> tuple[int | None, bytes, dict[str, Any] | None]:  # fmt: skip
    """One utterance over a websocket: (close code, audio bytes, error message)."""
    url = f"ws://127.0.0.1:{server.port}/v1/text-to-speech/{voice}/{endpoint}?{query}"
    with connect(url, additional_headers={"xi-api-key": key} if key else {}) as ws:
        if endpoint == "stream-input":
            reply = converse(ws, BOS, {"text": TEXT + " "}, EOS)
        else:
            reply = converse(
                ws, {**BOS, "context_id": "c"}, {"text": TEXT, "context_id": "c", "flush": True},
                {"context_id": "c", "close_context": True}, {"close_socket": True},
            )  # fmt: skip
    return reply.close_code, reply.audio_bytes, reply.error


# --- voice aliases and the fallback -----------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["stream-input", "multi-stream-input"])
@pytest.mark.parametrize("alias", [ELEVEN_ID, "Rachel"])
def test_an_alias_speaks_on_both_websockets(strict: Server, alias: str, endpoint: str) -> None:
    code, audio, error = speak_ws(strict, alias, endpoint=endpoint)
    assert (code, error) == (1000, None) and audio
    assert audio == speak_ws(strict, CLIP_VOICE, endpoint=endpoint)[1]


def test_an_alias_is_honoured_by_http_speech_and_the_voice_look_ups(
    strict: Server, sdk: Callable[[Server], ElevenLabs]
) -> None:
    client = sdk(strict)
    audio = b"".join(client.text_to_speech.convert(ELEVEN_ID, text=TEXT, output_format="pcm_24000"))
    assert audio == b"".join(
        client.text_to_speech.convert(CLIP_VOICE, text=TEXT, output_format="pcm_24000")
    )
    assert client.voices.get("Rachel").voice_id == CLIP_VOICE
    assert client.voices.settings.get(ELEVEN_ID) == client.voices.settings.get_default()


def test_an_unknown_voice_stays_voice_not_found_without_the_fallback(
    strict: Server, sdk: Callable[[Server], ElevenLabs]
) -> None:
    code, audio, error = speak_ws(strict, "EXAVITQu4vr4xnSDxMaL")
    assert code == 1008 and not audio and error is not None
    assert error["error"] == "voice_not_found"
    client = sdk(strict)
    for call in (
        lambda: b"".join(client.text_to_speech.convert("EXAVITQu4vr4xnSDxMaL", text=TEXT)),
        lambda: client.voices.get("EXAVITQu4vr4xnSDxMaL"),
    ):
        with pytest.raises(ApiError) as refused:
            call()
        assert refused.value.status_code == 404
        assert isinstance(refused.value.body, dict)
        assert refused.value.body["detail"]["status"] == "voice_not_found"


def test_the_fallback_speaks_an_unknown_voice_with_the_default_and_logs_it(
    lenient: Server, sdk: Callable[[Server], ElevenLabs]
) -> None:
    code, audio, error = speak_ws(lenient, "EXAVITQu4vr4xnSDxMaL", "output_format=pcm_24000")
    assert (code, error) == (1000, None) and audio
    with sdk(lenient).text_to_speech.with_raw_response.convert(
        "EXAVITQu4vr4xnSDxMaL", text=TEXT, output_format="pcm_24000"
    ) as response:
        assert b"".join(response.data)
        request_id = response.headers["request-id"]
    assert f"session={request_id} http voice='EXAVITQu4vr4xnSDxMaL'" in lenient.logs()
    assert "'EXAVITQu4vr4xnSDxMaL' is not served; speaking with the default voice" in lenient.logs()
    client = sdk(lenient)
    assert client.voices.get("no-such-voice").voice_id == "default"
    with pytest.raises(ApiError) as refused:  # deleting must name a real voice
        client.voices.delete("no-such-voice")
    assert refused.value.status_code == 404


# --- the websocket's default output format ----------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["stream-input", "multi-stream-input"])
def test_a_socket_naming_no_format_gets_mp3_44100_128(strict: Server, endpoint: str) -> None:
    code, audio, _ = speak_ws(strict, CLIP_VOICE, "", endpoint=endpoint)
    assert code == 1000
    decoded = decode(audio)
    assert (decoded.container, decoded.sample_rate, decoded.channels) == ("mp3", 44100, 1)


@pytest.mark.parametrize("endpoint", ["stream-input", "multi-stream-input"])
def test_the_setting_keeps_the_old_pcm_default(lenient: Server, endpoint: str) -> None:
    code, audio, _ = speak_ws(lenient, CLIP_VOICE, "", endpoint=endpoint)
    assert code == 1000
    named = speak_ws(lenient, CLIP_VOICE, "output_format=pcm_24000", endpoint=endpoint)[1]
    assert audio == named


# --- answer headers -------------------------------------------------------------------------------


def test_speech_answers_carry_request_id_cost_and_concurrency(
    strict: Server, sdk: Callable[[Server], ElevenLabs]
) -> None:
    client = sdk(strict)
    with client.text_to_speech.with_raw_response.convert(CLIP_VOICE, text=TEXT) as response:
        assert b"".join(response.data)
        headers = response.headers
    assert re.fullmatch(r"[0-9a-f]{16}", headers["request-id"])
    assert f"session={headers['request-id']} http" in strict.logs()
    assert headers["character-cost"] == str(len(TEXT))
    assert headers["maximum-concurrent-requests"] == "2"
    assert headers["current-concurrent-requests"] in {"0", "1"}  # its own slot, or given back
    with client.text_to_speech.with_raw_response.stream(CLIP_VOICE, text=TEXT) as streamed:
        assert b"".join(streamed.data)
        assert streamed.headers["character-cost"] == str(len(TEXT))
        assert streamed.headers["request-id"] != headers["request-id"]


def test_every_answer_has_a_request_id_and_the_pool_s_concurrency(strict: Server) -> None:
    def get() -> httpx.Response:
        return httpx.get(f"{strict.http_url}/v1/voices", headers=HEADERS)

    refused = httpx.get(f"{strict.http_url}/v1/voices")
    assert refused.status_code == 401 and refused.headers["request-id"]
    assert "character-cost" not in refused.headers
    assert get().headers["current-concurrent-requests"] == "0"
    with connect(strict.ws_url(), additional_headers=HEADERS) as ws:
        ws.send(json.dumps(BOS))  # slot_lease: session: the socket now holds a slot
        deadline = time.monotonic() + 10
        while get().headers["current-concurrent-requests"] != "1":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert get().headers["maximum-concurrent-requests"] == "2"
        assert "character-cost" not in get().headers


# --- error statuses -------------------------------------------------------------------------------


def test_too_much_text_is_400_max_character_limit_exceeded(
    strict: Server, sdk: Callable[[Server], ElevenLabs]
) -> None:
    with pytest.raises(ApiError) as refused:
        b"".join(sdk(strict).text_to_speech.convert(CLIP_VOICE, text="word " * 130))
    assert refused.value.status_code == 400
    assert isinstance(refused.value.body, dict)
    detail = refused.value.body["detail"]
    assert detail["status"] == "max_character_limit_exceeded"
    assert "650 characters" in detail["message"] and "600" in detail["message"]


# --- single-use tokens ----------------------------------------------------------------------------


def test_a_single_use_token_opens_one_socket_once(
    strict: Server, sdk: Callable[[Server], ElevenLabs]
) -> None:
    token = sdk(strict).tokens.single_use.create("tts_websocket").token
    assert len(token) >= 32
    query = f"output_format=pcm_16000&single_use_token={token}"
    code, audio, error = speak_ws(strict, CLIP_VOICE, query, key=None)
    assert (code, error) == (1000, None) and audio
    for reused in (query, "single_use_token=made-up"):
        code, audio, error = speak_ws(strict, CLIP_VOICE, reused, key=None)
        assert code == 1008 and not audio and error is not None
        assert error["error"] == "invalid_api_key" and "already used" in error["message"]
    other = sdk(strict).tokens.single_use.create("tts_websocket").token
    code, _, error = speak_ws(
        strict, CLIP_VOICE, f"single_use_token={other}", endpoint="multi-stream-input", key=None
    )
    assert (code, error) == (1000, None)


def test_minting_needs_a_key(strict: Server) -> None:
    url = f"{strict.http_url}/v1/single-use-token/tts_websocket"
    refused = httpx.post(url, headers={"xi-api-key": "not-a-key"})
    assert refused.status_code == 401
    assert refused.json()["detail"]["status"] == "invalid_api_key"
    assert httpx.post(url).status_code == 401


def test_a_token_expires(lenient: Server, sdk: Callable[[Server], ElevenLabs]) -> None:
    token = sdk(lenient).tokens.single_use.create("tts_websocket").token
    time.sleep(1.2)  # auth.single_use_token_ttl_s is 1
    code, _, error = speak_ws(lenient, CLIP_VOICE, f"single_use_token={token}", key=None)
    assert code == 1008 and error is not None and error["error"] == "invalid_api_key"


# --- the subscription's character count -----------------------------------------------------------


def test_the_subscription_counts_the_characters_spoken(
    lenient: Server, sdk: Callable[[Server], ElevenLabs]
) -> None:
    client = sdk(lenient)
    before = client.user.subscription.get().character_count
    assert b"".join(client.text_to_speech.convert(CLIP_VOICE, text=TEXT))
    assert client.user.subscription.get().character_count == before + len(TEXT)
    assert client.user.get().subscription.character_count == before + len(TEXT)
