"""OpenAI's speech API (``POST /v1/audio/speech``) with the official ``openai`` SDK, unmodified
but its ``base_url``, against a real balancer on the tone backend.

The tone backend turns each character into ``MS_PER_CHAR`` of tone, "computed" in real time
(so a long input is still being made while the test reads its first bytes), which makes
durations predictable without a checkpoint. Every ``response_format`` is decoded with PyAV
(``openai_audio.check_audio``).
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator

import httpx
import numpy as np
import openai
import pytest
import soundfile
from balancer_server import CLIP_VOICE, KEY, Server, start_server
from openai_audio import (
    CONTENT_TYPES,
    FORMATS,
    LONG_TEXT,
    MS_PER_CHAR,
    TEXT,
    check_audio,
    tone_config,
    wait_until,
)

UNMAPPED_VOICE = "missing-clip"


@pytest.fixture(scope="module")
def tone_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One tone worker with two slots, ``alloy`` mapped to the clip voice and ``nova`` to a voice
    the workers do not serve (so a test can see the map is used); real time for long inputs."""
    config = tone_config(tmp_path_factory.mktemp("openai-voices"))
    config["openai"] = {"voices": {"alloy": CLIP_VOICE, "nova": UNMAPPED_VOICE}}
    srv = start_server(tmp_path_factory.mktemp("openai"), config)
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(tone_server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        api_key=KEY, base_url=f"{tone_server.http_url}/v1", max_retries=0, timeout=60
    ) as sdk:
        yield sdk


def sessions_active(server: Server) -> float:
    match = re.search(r"^xtts_sessions_active (\S+)$", server.get("/metrics").text, re.M)
    assert match is not None
    return float(match.group(1))


@pytest.fixture(scope="module")
def text_seconds(tone_server: Server) -> float:
    """How long TEXT is spoken, from raw PCM: what every format must reproduce."""
    with openai.OpenAI(api_key=KEY, base_url=f"{tone_server.http_url}/v1") as sdk:
        audio = sdk.audio.speech.create(
            model="tts-1", voice="alloy", input=TEXT, response_format="pcm"
        ).content
    seconds = len(audio) / 2 / 24000
    assert seconds >= len(TEXT) * MS_PER_CHAR / 1000 * 0.9
    return seconds


@pytest.mark.parametrize("fmt", FORMATS)
def test_create_answers_every_format_as_audio_that_decodes(
    client: openai.OpenAI, text_seconds: float, fmt: str
) -> None:
    response = client.audio.speech.create(
        model="tts-1",
        voice="alloy",
        input=TEXT,
        response_format=fmt,  # type: ignore[arg-type]
    )
    check_audio(response.content, fmt, text_seconds)


@pytest.mark.parametrize("fmt", FORMATS)
def test_streaming_response_joins_into_audio_that_decodes(
    client: openai.OpenAI, text_seconds: float, fmt: str
) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="echo", input=TEXT,
        response_format=fmt,  # type: ignore[arg-type]
    ) as response:  # fmt: skip
        assert response.headers["content-type"].startswith(CONTENT_TYPES[fmt])
        chunks = list(response.iter_bytes())
    check_audio(b"".join(chunks), fmt, text_seconds)


def test_first_bytes_arrive_while_the_audio_is_still_being_made(
    client: openai.OpenAI, tone_server: Server
) -> None:
    total_s = len(LONG_TEXT) * MS_PER_CHAR / 1000  # made in real time: seconds
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=LONG_TEXT, response_format="pcm"
    ) as response:
        chunks = response.iter_bytes()
        first = next(chunk for chunk in chunks if chunk)
        # The request is still a session at the server: its audio is not all made yet.
        assert sessions_active(tone_server) == 1
        assert len(first) < total_s * 48000 / 4
        rest = b"".join(chunks)
    assert (len(first) + len(rest)) / 48000 > total_s * 0.9  # spaces between sentences drop
    wait_until(lambda: sessions_active(tone_server) == 0)


def test_a_client_leaving_a_stream_gives_its_slot_back_before_the_audio_is_made(
    client: openai.OpenAI, tone_server: Server
) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=LONG_TEXT, response_format="mp3"
    ) as response:
        next(chunk for chunk in response.iter_bytes() if chunk)
        response.close()
    # LONG_TEXT takes about 6 s to make; the job is cancelled when the client goes.
    wait_until(lambda: sessions_active(tone_server) == 0, timeout=3.0)


def test_sse_sends_audio_deltas_then_done_with_usage(
    client: openai.OpenAI, text_seconds: float
) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice=CLIP_VOICE, input=TEXT, response_format="mp3", stream_format="sse"
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            json.loads(line.removeprefix("data: "))
            for line in response.iter_lines()
            if line.startswith("data: ")
        ]
    *deltas, done = events
    assert len(deltas) > 1 and {e["type"] for e in deltas} == {"speech.audio.delta"}
    check_audio(b"".join(base64.b64decode(e["audio"]) for e in deltas), "mp3", text_seconds)
    assert done["type"] == "speech.audio.done"
    usage = done["usage"]
    assert usage["input_tokens"] == len(TEXT) and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_speed_changes_the_duration(client: openai.OpenAI, text_seconds: float) -> None:
    audio = client.audio.speech.create(
        model="tts-1", voice="alloy", input=TEXT, response_format="pcm", speed=2.0,
        instructions="Speak cheerfully.",  # accepted and ignored
    ).content  # fmt: skip
    assert abs(len(audio) / 48000 - text_seconds / 2) < 0.01


def test_voices_resolve_by_map_id_name_and_openai_name(
    client: openai.OpenAI, tone_server: Server
) -> None:
    clip = io.BytesIO()
    soundfile.write(clip, np.zeros(22050, np.float32), 22050, format="WAV")
    added = httpx.post(
        f"{tone_server.http_url}/v1/voices/add", headers={"xi-api-key": KEY},
        data={"name": "Storyteller"}, files={"files": ("s.wav", clip.getvalue(), "audio/wav")},
    )  # fmt: skip
    assert added.status_code == 200, added.text
    for voice in ("alloy", "shimmer", CLIP_VOICE, "Storyteller", added.json()["voice_id"]):
        audio = client.audio.speech.create(
            model="tts-1", voice=voice, input="Hi.", response_format="pcm"
        ).content
        assert len(audio) > 0, voice
    by_id = client.audio.speech.create(
        model="tts-1", voice={"id": CLIP_VOICE}, input="Hi.", response_format="pcm"
    )
    assert len(by_id.content) > 0
    # nova is mapped to a voice the workers do not serve: the map, not the default, decides.
    with pytest.raises(openai.BadRequestError) as mapped:
        client.audio.speech.create(model="tts-1", voice="nova", input="Hi.")
    assert UNMAPPED_VOICE in mapped.value.message


def test_errors_are_the_sdks_typed_exceptions_with_our_messages(tone_server: Server) -> None:
    base_url = f"{tone_server.http_url}/v1"
    wrong = openai.OpenAI(api_key="wrong-key", base_url=base_url, max_retries=0)
    with wrong, pytest.raises(openai.AuthenticationError) as bad_key:
        wrong.audio.speech.create(model="tts-1", voice="alloy", input="Hi.")
    assert bad_key.value.status_code == 401
    assert bad_key.value.code == "invalid_api_key"
    assert bad_key.value.type == "invalid_request_error"
    with openai.OpenAI(api_key=KEY, base_url=base_url, max_retries=0) as sdk:
        cases = [
            ({"voice": "Nobody"}, "voice", "voice_not_found"),
            ({"response_format": "ogg"}, "response_format", "invalid_request"),
            ({"input": ""}, "input", "invalid_request"),
            ({"speed": 5.0}, "speed", "invalid_request"),
            ({"input": "x" * 2001}, "input", "max_character_limit_exceeded"),
        ]
        for change, param, code in cases:
            request = {"model": "tts-1", "voice": "alloy", "input": "Hi.", **change}
            with pytest.raises(openai.BadRequestError) as refused:
                sdk.audio.speech.create(**request)  # type: ignore[arg-type]
            error = refused.value
            assert (error.status_code, error.param, error.code) == (400, param, code), change
            assert isinstance(error.body, dict) and set(error.body) == {
                "message", "type", "param", "code"
            }  # fmt: skip
    assert "Nobody" in httpx.post(
        f"{base_url}/audio/speech", headers={"authorization": f"Bearer {KEY}"},
        json={"model": "tts-1", "voice": "Nobody", "input": "Hi."},
    ).json()["error"]["message"]  # fmt: skip
    wait_until(lambda: sessions_active(tone_server) == 0)


def test_a_full_server_is_a_rate_limit_error(tone_server: Server) -> None:
    """Two slots held by long streams and the one queue place taken: the next is 429."""
    base_url = f"{tone_server.http_url}/v1"
    with openai.OpenAI(api_key=KEY, base_url=base_url, max_retries=0) as sdk:
        streams = [
            sdk.audio.speech.with_streaming_response.create(
                model="tts-1", voice="alloy", input=LONG_TEXT, response_format="pcm"
            )
            for _ in range(2)
        ]
        opened = [stream.__enter__() for stream in streams]
        try:
            with pytest.raises(openai.RateLimitError) as busy:
                for _ in range(2):  # the first may wait in the queue and time out into 429
                    sdk.audio.speech.create(model="tts-1", voice="alloy", input=LONG_TEXT)
            assert busy.value.status_code == 429 and busy.value.code
        finally:
            for stream, response in zip(streams, opened, strict=True):
                response.close()
                stream.__exit__(None, None, None)


def test_model_listing_in_openai_shape(client: openai.OpenAI, tone_server: Server) -> None:
    listing = client.get("/audio/models", cast_to=httpx.Response)
    body = listing.json()
    assert body["object"] == "list"
    ids = [model["id"] for model in body["data"]]
    assert ids[:4] == ["xtts_v2", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"]
    assert {model["object"] for model in body["data"]} == {"model"}
    # GET /v1/models stays ElevenLabs' array.
    elevenlabs = httpx.get(f"{tone_server.http_url}/v1/models", headers={"xi-api-key": KEY})
    assert isinstance(elevenlabs.json(), list)
