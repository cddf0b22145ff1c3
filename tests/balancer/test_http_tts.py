"""HTTP speech endpoints and compressed formats against the shared real server (conftest.py)."""

from __future__ import annotations

import base64
import io
import itertools
import json
import time
from typing import Any

import httpx
import pytest
import soundfile
from balancer_server import CLIP_VOICE, KEY, Server, converse
from pyav_decode import decode

TEXT = "Hello there. How are you?"
SEED = 7
HEADERS = {"xi-api-key": KEY}
SHORT = {"text": "Hi."}
# Every format is checked in test_encoders.py; here one of each codec and rate goes end to end.
COMPRESSED = [("mp3_22050_32", 22050), ("mp3_44100", 44100), ("opus_48000_32", 48000)]


def tts(
    server: Server, path: str = "", query: str = "output_format=pcm_24000",
    body: dict[str, Any] | None = None, voice: str = CLIP_VOICE,
    headers: dict[str, str] | None = HEADERS,
) -> httpx.Response:  # fmt: skip
    url = f"{server.http_url}/v1/text-to-speech/{voice}{path}?{query}"
    return httpx.post(
        url, json=body if body is not None else {"text": TEXT, "seed": SEED}, headers=headers,
        timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pcm_seconds(server: Server) -> float:
    """Duration of TEXT at SEED, from raw 24 kHz PCM: what every format must reproduce."""
    response = tts(server)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/pcm"
    assert len(response.content) > 0 and len(response.content) % 2 == 0
    return len(response.content) / 2 / 24000


@pytest.mark.parametrize(("output_format", "rate"), COMPRESSED)
def test_whole_file_in_every_compressed_format_decodes(
    server: Server, pcm_seconds: float, output_format: str, rate: int
) -> None:
    response = tts(server, query=f"output_format={output_format}")
    assert response.status_code == 200, response.text
    codec = output_format.split("_")[0]
    expected_type = {"mp3": "audio/mpeg", "opus": "audio/ogg"}[codec]
    assert response.headers["content-type"] == expected_type
    decoded = decode(response.content)
    assert decoded.container == {"mp3": "mp3", "opus": "ogg"}[codec]
    assert decoded.sample_rate == rate and decoded.channels == 1
    seconds = decoded.seconds
    # mp3 adds the encoder's delay and pads to whole frames (< 0.1 s); Opus trims its pre-skip.
    assert pcm_seconds - 0.005 <= seconds <= pcm_seconds + (0.1 if codec == "mp3" else 0.03)


def test_default_format_is_mp3_44100_128(server: Server, pcm_seconds: float) -> None:
    response = tts(server, query="")
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/mpeg"
    assert decode(response.content).sample_rate == 44100
    bitrate_bytes = 128_000 / 8 * (pcm_seconds + 0.1)
    assert len(response.content) <= bitrate_bytes * 1.05


def test_wav_whole_file(server: Server, pcm_seconds: float) -> None:
    response = tts(server, query="output_format=wav_16000")
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/wav"
    data, rate = soundfile.read(io.BytesIO(response.content))
    assert rate == 16000 and abs(len(data) / rate - pcm_seconds) < 0.01


@pytest.mark.parametrize(
    ("output_format", "rate"), [("mp3_44100_128", 44100), ("opus_48000_64", 48000)]
)
def test_stream_sends_audio_in_chunks_that_join_into_a_valid_file(
    server: Server, pcm_seconds: float, output_format: str, rate: int
) -> None:
    url = f"{server.http_url}/v1/text-to-speech/{CLIP_VOICE}/stream?output_format={output_format}"
    chunks = []
    with httpx.stream(
        "POST", url, json={"text": TEXT, "seed": SEED}, headers=HEADERS, timeout=60
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("audio/")
        assert r.headers.get("transfer-encoding") == "chunked"
        chunks = [chunk for chunk in r.iter_raw() if chunk]
    assert len(chunks) > 1
    decoded = decode(b"".join(chunks))
    assert decoded.sample_rate == rate and abs(decoded.seconds - pcm_seconds) < 0.1


def test_stream_sends_first_mp3_bytes_long_before_the_end(server: Server) -> None:
    text = " ".join(["This sentence is one of several to speak."] * 6)
    url = f"{server.http_url}/v1/text-to-speech/{CLIP_VOICE}/stream?output_format=mp3_44100_64"
    t0 = time.monotonic()
    with httpx.stream("POST", url, json={"text": text}, headers=HEADERS, timeout=60) as r:
        chunks = r.iter_raw()
        first = next(chunk for chunk in chunks if chunk)
        t_first = time.monotonic() - t0
        rest = b"".join(chunks)
    t_total = time.monotonic() - t0
    assert t_first < t_total / 3, (t_first, t_total)
    assert decode(first + rest).seconds > 2.0


def test_stream_pcm_equals_whole_file_for_the_same_seed(server: Server) -> None:
    """Also what the duration comparisons rely on: a seed gives the same audio on any worker."""
    whole = tts(server).content
    streamed = tts(server, path="/stream").content
    assert streamed == whole


def check_alignment(alignment: dict[str, list[Any]], seconds: float) -> str:
    chars = alignment["characters"]
    starts = alignment["character_start_times_seconds"]
    ends = alignment["character_end_times_seconds"]
    assert len(chars) == len(starts) == len(ends)
    assert all(s <= e for s, e in zip(starts, ends, strict=True))
    assert all(a <= b for a, b in itertools.pairwise(starts))
    assert starts[0] >= 0 and ends[-1] <= seconds + 0.002
    return "".join(chars)


def test_with_timestamps_returns_base64_audio_and_every_character(
    server: Server, pcm_seconds: float
) -> None:
    response = tts(server, path="/with-timestamps")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    pcm = base64.b64decode(body["audio_base64"])
    assert len(pcm) / 2 / 24000 == pytest.approx(pcm_seconds)
    assert body["normalized_alignment"] == body["alignment"]
    assert check_alignment(body["alignment"], pcm_seconds) == TEXT


def test_stream_with_timestamps_sends_one_json_object_per_line(
    server: Server, pcm_seconds: float
) -> None:
    response = tts(server, path="/stream/with-timestamps")
    assert response.status_code == 200
    assert response.text.endswith("\n")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert len(lines) > 1
    pcm = b"".join(base64.b64decode(line["audio_base64"]) for line in lines)
    assert len(pcm) / 2 / 24000 == pytest.approx(pcm_seconds)
    joined: dict[str, list[Any]] = {
        "characters": [], "character_start_times_seconds": [], "character_end_times_seconds": []
    }  # fmt: skip
    for line in lines:
        if line["alignment"] is not None:
            for key, values in line["alignment"].items():
                joined[key] += values
    assert check_alignment(joined, pcm_seconds) == TEXT


def test_request_defaults_and_accepted_fields(server: Server) -> None:
    body: dict[str, Any] = {
        "text": "Hi.", "model_id": "eleven_turbo_v2_5", "voice_settings": None,
        "language_code": "en", "previous_text": "Before.", "next_text": "After.",
        "pronunciation_dictionary_locators": [], "apply_text_normalization": "on",
        "unknown_field": 1,
    }  # fmt: skip
    response = tts(server, query="output_format=pcm_16000&optimize_streaming_latency=3", body=body)
    assert response.status_code == 200 and len(response.content) > 0
    assert "model_id 'eleven_turbo_v2_5' requested" in server.logs()


def test_speed_changes_the_audio(server: Server) -> None:
    slow = tts(server, body={"text": "Hi.", "seed": SEED, "voice_settings": {"speed": 0.7}})
    fast = tts(server, body={"text": "Hi.", "seed": SEED, "voice_settings": {"speed": 1.2}})
    assert slow.status_code == fast.status_code == 200
    assert slow.content != fast.content


@pytest.mark.parametrize(
    ("path", "query", "body", "status", "check"),
    [
        ("", "output_format=mp3_1_2", None, 422, "mp3_44100_128"),
        ("/stream", "output_format=wav_16000", None, 422, "whole-file"),
        ("", "optimize_streaming_latency=9", None, 422, "optimize_streaming_latency"),
        ("", "", {"seed": 1}, 422, "text"),
        ("", "", {"text": ""}, 422, "text"),
        ("", "", {"text": "Hi.", "language_code": "xx"}, 422, "not supported"),
        ("", "", {"text": "Hi.", "voice_settings": {"speed": 9}}, 422, "speed"),
        ("", "", {"text": "x" * 601}, 400, "exceeds the character limit of 600"),
    ],
)
def test_bad_requests_are_refused_naming_the_problem(
    server: Server, path: str, query: str, body: dict[str, Any] | None, status: int, check: str
) -> None:
    response = tts(server, path=path, query=query, body=body)
    assert response.status_code == status
    assert check in json.dumps(response.json())


def test_validation_error_shape(server: Server) -> None:
    detail = tts(server, query="output_format=flac_1").json()["detail"]
    assert detail[0]["loc"] == ["query", "output_format"]
    assert "supported: " in detail[0]["msg"] and "opus_48000_192" in detail[0]["msg"]
    detail = tts(server, body={"seed": 1}).json()["detail"]
    assert detail[0]["loc"] == ["body", "text"] and detail[0]["type"] == "missing"


def test_body_that_is_not_json_is_422(server: Server) -> None:
    url = f"{server.http_url}/v1/text-to-speech/{CLIP_VOICE}"
    response = httpx.post(url, content=b"{not json", headers=HEADERS, timeout=10)
    assert response.status_code == 422 and "not valid JSON" in response.text


def test_body_nested_too_deep_is_422_not_500(server: Server) -> None:
    """Regression: json.loads raises RecursionError (not ValueError) past ~1000 levels."""
    url = f"{server.http_url}/v1/text-to-speech/{CLIP_VOICE}"
    body = b'{"text": "hi", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = httpx.post(url, content=body, headers=HEADERS, timeout=10)
    assert response.status_code == 422 and "not valid JSON" in response.text


def test_unknown_voice_is_404_voice_not_found(server: Server) -> None:
    response = tts(server, voice="nobody")
    assert response.status_code == 404
    assert response.json() == {
        "detail": {
            "status": "voice_not_found",
            "message": "A voice for the voice_id nobody was not found.",
        }
    }


@pytest.mark.parametrize("headers", [None, {"xi-api-key": "wrong"}, {"authorization": "Bearer x"}])
def test_missing_or_wrong_key_is_401(server: Server, headers: dict[str, str] | None) -> None:
    response = tts(server, headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"]["status"] == "invalid_api_key"


def test_bearer_and_query_keys_are_accepted(server: Server) -> None:
    bearer = tts(server, body=SHORT, headers={"authorization": f"Bearer {KEY}"})
    assert bearer.status_code == 200
    in_query = tts(
        server, query=f"output_format=pcm_16000&xi_api_key={KEY}", body=SHORT, headers=None
    )
    assert in_query.status_code == 200


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({"xi-api-key": KEY}, "xi_api_key=wrong", 200),  # a header before the query
        (None, f"xi_api_key={KEY}&authorization=Bearer%20wrong", 200),  # xi_api_key first
        ({"xi-api-key": "wrong"}, f"xi_api_key={KEY}", 401),  # the first key found decides
    ],
)
def test_key_precedence_is_the_protocols(
    server: Server, headers: dict[str, str] | None, query: str, status: int
) -> None:
    response = tts(server, query=f"output_format=pcm_16000&{query}", body=SHORT, headers=headers)
    assert response.status_code == status


def wait_idle(server: Server, slots: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while server.get("/workers/idle").json()["idle_workers"] < slots:
        assert time.monotonic() < deadline, "slots were not given back"
        time.sleep(0.05)


def test_client_leaving_a_stream_gives_its_slot_back(server: Server) -> None:
    wait_idle(server, 2)
    long_text = " ".join(["This sentence is here to keep the worker busy."] * 8)
    url = f"{server.http_url}/v1/text-to-speech/{CLIP_VOICE}/stream?output_format=pcm_48000"
    with httpx.stream("POST", url, json={"text": long_text}, headers=HEADERS, timeout=60) as r:
        assert r.status_code == 200
        next(r.iter_raw())
    wait_idle(server, 2)
    assert tts(server, body=SHORT).status_code == 200


@pytest.mark.parametrize(
    ("output_format", "rate"), [("mp3_22050_32", 22050), ("opus_48000_64", 48000)]
)
def test_websocket_serves_compressed_formats(server: Server, output_format: str, rate: int) -> None:
    with server.connect(query=f"output_format={output_format}") as ws:
        reply = converse(
            ws, {"text": " ", "voice_settings": {"speed": 1.0}}, {"text": "Hello there. "},
            {"text": "How are you?"}, {"text": ""},
        )  # fmt: skip
    assert reply.close_code == 1000 and reply.messages[-1]["isFinal"] is True
    decoded = decode(reply.audio_bytes)
    assert decoded.sample_rate == rate and decoded.seconds > 0.1
    chars = "".join("".join(m["alignment"]["chars"]) for m in reply.audio if m["alignment"])
    assert chars == "Hello there. How are you? "
