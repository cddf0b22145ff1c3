"""Voices, models, OpenAPI and the official SDK's HTTP methods against the shared real server."""

from __future__ import annotations

import base64
import io
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
import soundfile
from balancer_server import CLIP_VOICE, KEY, Server
from elevenlabs.client import ElevenLabs
from pyav_decode import decode

HEADERS = {"xi-api-key": KEY}
SPEAKERS = ("Random Speaker", "Other Speaker")  # the tiny checkpoint's speakers_xtts.pth


def wav_bytes(seconds: float = 1.5, rate: int = 16000, freq: float = 200.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    out = io.BytesIO()
    soundfile.write(
        out, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, format="WAV"
    )
    return out.getvalue()


def mp3_bytes(seconds: float = 1.0, rate: int = 44100) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        t = np.arange(int(seconds * rate)) / rate
        frame = av.AudioFrame.from_ndarray(
            (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)[None, :], format="flt",
            layout="mono",
        )  # fmt: skip
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return out.getvalue()


def add(
    server: Server, files: list[tuple[str, bytes]], data: dict[str, str] | None = None,
    headers: dict[str, str] | None = HEADERS,
) -> httpx.Response:  # fmt: skip
    return httpx.post(
        f"{server.http_url}/v1/voices/add", data=data if data is not None else {"name": "Tester"},
        files=[("files", (name, content, "application/octet-stream")) for name, content in files],
        headers=headers, timeout=60,
    )  # fmt: skip


@pytest.fixture
def library(model_files: tuple[Path, Path]) -> Iterator[Path]:
    """The shared server's voices_dir; fails a test that leaves files or writes elsewhere."""
    directory = model_files[1]
    before = set(directory.iterdir())
    yield directory
    assert set(directory.iterdir()) == before, "the test left files in the library"


def speak(server: Server, voice: str) -> httpx.Response:
    return httpx.post(
        f"{server.http_url}/v1/text-to-speech/{voice}?output_format=pcm_16000",
        json={"text": "Hi there."}, headers=HEADERS, timeout=60,
    )  # fmt: skip


def test_voices_lists_clips_as_cloned_and_speakers_as_premade(server: Server) -> None:
    response = server.get("/v1/voices")
    assert response.status_code == 401  # no key
    voices = httpx.get(f"{server.http_url}/v1/voices", headers=HEADERS).json()["voices"]
    by_id = {v["voice_id"]: v for v in voices}
    assert set(by_id) == {CLIP_VOICE, *SPEAKERS}
    assert by_id[CLIP_VOICE]["category"] == "cloned"
    assert all(by_id[s]["category"] == "premade" and by_id[s]["name"] == s for s in SPEAKERS)
    for voice in voices:
        assert {"voice_id", "name", "category", "labels", "available_for_tiers",
                "high_quality_base_model_ids"} <= set(voice)  # fmt: skip


def test_get_voice_and_unknown_voice(server: Server) -> None:
    voice = httpx.get(f"{server.http_url}/v1/voices/{CLIP_VOICE}", headers=HEADERS).json()
    assert voice["voice_id"] == CLIP_VOICE
    missing = httpx.get(f"{server.http_url}/v1/voices/nobody", headers=HEADERS)
    assert missing.status_code == 404
    assert missing.json()["detail"]["status"] == "voice_not_found"


def test_added_voice_is_listed_spoken_by_every_worker_and_deleted(
    server: Server, library: Path
) -> None:
    response = add(
        server, [("a.wav", wav_bytes()), ("b.mp3", mp3_bytes())],
        {"name": "Tester", "description": "two clips", "labels": '{"accent": "none"}'},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    voice_id = response.json()["voice_id"]
    assert re.fullmatch(r"[0-9a-f]{20}", voice_id)
    assert response.json()["requires_verification"] is False
    try:
        clip, rate = soundfile.read(library / f"{voice_id}.wav")
        assert rate == 22050 and 2.6 < len(clip) / rate < 2.9  # 1.5 s + gap + 1 s
        voice = httpx.get(f"{server.http_url}/v1/voices/{voice_id}", headers=HEADERS).json()
        assert voice["name"] == "Tester" and voice["category"] == "cloned"
        assert voice["labels"] == {"accent": "none"} and voice["description"] == "two clips"
        listed = httpx.get(f"{server.http_url}/v1/voices", headers=HEADERS).json()["voices"]
        assert voice_id in {v["voice_id"] for v in listed}
        # Hold worker 0 with a stream so the next request lands on worker 1: both load the voice.
        url = f"{server.http_url}/v1/text-to-speech/{voice_id}/stream?output_format=pcm_16000"
        text = " ".join(["Keep the first worker busy for a while."] * 6)
        with httpx.stream("POST", url, json={"text": text}, headers=HEADERS, timeout=60) as first:
            assert first.status_code == 200
            second = speak(server, voice_id)
            assert second.status_code == 200 and len(second.content) > 0
            assert b"".join(first.iter_raw())
    finally:
        deleted = httpx.delete(f"{server.http_url}/v1/voices/{voice_id}", headers=HEADERS)
    assert deleted.status_code == 200 and deleted.json() == {"status": "ok"}
    assert not (library / f"{voice_id}.wav").exists()
    assert speak(server, voice_id).status_code == 404
    assert (
        httpx.delete(f"{server.http_url}/v1/voices/{voice_id}", headers=HEADERS).status_code == 404
    )
    loaded = re.findall(r"loaded voice (\w+) added", server.logs())
    assert loaded.count(voice_id) == 2  # once in each worker


def test_upload_file_names_never_become_paths(server: Server, library: Path) -> None:
    response = add(server, [("../../escape.wav", wav_bytes()), ("/etc/x.wav", wav_bytes())])
    assert response.status_code == 200
    voice_id = response.json()["voice_id"]
    try:
        assert not (library / "../../escape.wav").resolve().exists()
        assert not list(library.parent.rglob("escape*")) and not list(library.rglob("x.wav"))
        assert (library / f"{voice_id}.wav").is_file()
    finally:
        assert (
            httpx.delete(f"{server.http_url}/v1/voices/{voice_id}", headers=HEADERS).status_code
            == 200
        )


def test_the_voice_id_is_the_uploaded_content(server: Server, library: Path) -> None:
    first, second = wav_bytes(freq=210.0), wav_bytes(freq=320.0)
    one = add(server, [("a.wav", first), ("b.wav", second)], {"name": "One"}).json()["voice_id"]
    try:
        again = add(server, [("c.wav", first), ("d.wav", second)], {"name": "Again"})
        assert again.json()["voice_id"] == one  # file names do not count, the bytes do
        voice = httpx.get(f"{server.http_url}/v1/voices/{one}", headers=HEADERS).json()
        assert voice["name"] == "Again"  # adding it again only renamed it
        swapped = add(server, [("b.wav", second), ("a.wav", first)]).json()["voice_id"]
        assert swapped != one  # another order is another reference clip
        assert httpx.delete(f"{server.http_url}/v1/voices/{swapped}", headers=HEADERS).is_success
    finally:
        assert httpx.delete(f"{server.http_url}/v1/voices/{one}", headers=HEADERS).is_success
    # Standalone: a delete leaves no tombstone (the library fixture checks nothing is left).


def test_a_standalone_balancer_has_no_cluster_voice_endpoints(server: Server) -> None:
    for path in ("/cluster/voices", f"/cluster/voices/{CLIP_VOICE}"):
        assert server.get(path).status_code == 404


@pytest.mark.parametrize("voice_id", ["..%2F..%2Fnarrator", "..", "%2E%2E", "narrator.wav"])
def test_delete_with_a_path_as_id_is_404(server: Server, library: Path, voice_id: str) -> None:
    response = httpx.delete(f"{server.http_url}/v1/voices/{voice_id}", headers=HEADERS)
    assert response.status_code == 404
    assert (library / f"{CLIP_VOICE}.wav").is_file()


def test_configured_voices_cannot_be_deleted(server: Server, library: Path) -> None:
    for voice_id in (CLIP_VOICE, "Random Speaker"):
        response = httpx.delete(f"{server.http_url}/v1/voices/{voice_id}", headers=HEADERS)
        assert response.status_code == 403
        assert response.json()["detail"]["status"] == "voice_not_deletable"
    assert (library / f"{CLIP_VOICE}.wav").is_file()


@pytest.mark.parametrize(
    ("files", "data", "check"),
    [
        ([("notes.wav", b"this is not audio at all" * 50)], None, "not audio that can be decoded"),
        ([("silence.wav", wav_bytes(seconds=0.1))], None, "shorter than 0.5 s"),
        ([], None, "at least one reference audio file"),
        ([("a.wav", wav_bytes())], {}, "name is required"),
        ([("a.wav", wav_bytes())], {"name": "x", "labels": "[1"}, "labels must be a JSON object"),
        # Regression: nesting past the recursion limit was a 500 (RecursionError).
        (
            [("a.wav", wav_bytes())],
            {"name": "x", "labels": "[" * 5000 + "]" * 5000},
            "labels must be a JSON object",
        ),
        ([("a.wav", wav_bytes())], {"name": "x" * 101}, "at most 100 characters"),
    ],
)
def test_bad_uploads_are_422(
    server: Server, library: Path, files: list[tuple[str, bytes]], data: dict[str, str] | None,
    check: str,
) -> None:  # fmt: skip
    response = add(server, files, data)
    assert response.status_code == 422, response.text
    assert check in json.dumps(response.json())


def test_malformed_multipart_is_422(server: Server, library: Path) -> None:
    response = httpx.post(
        f"{server.http_url}/v1/voices/add", content=b"--xyz\r\nContent-Disposition: form-data\r\n\r\nnope",
        headers={**HEADERS, "content-type": "multipart/form-data; boundary=xyz"}, timeout=10,
    )  # fmt: skip
    assert response.status_code == 422 and "malformed multipart" in response.text


def raw_post(server: Server, path: str, headers: dict[str, str], body: bytes = b"") -> str:
    """The status line and body of a hand-written request (to send a Content-Length of our own)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = f"POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{head}\r\n"
        sock.sendall(request.encode() + body)
        answer = b""
        while chunk := sock.recv(65536):  # the server closes after answering
            answer += chunk
        return answer.decode(errors="replace")


def test_upload_over_the_limit_is_413_before_it_is_read(server: Server, library: Path) -> None:
    answer = raw_post(
        server, "/v1/voices/add",
        {"xi-api-key": KEY, "content-type": "multipart/form-data; boundary=b",
         "content-length": str(30 * 1024 * 1024)},
    )  # fmt: skip
    assert answer.startswith("HTTP/1.1 413") and "payload_too_large" in answer


def test_voice_management_needs_a_key(server: Server, library: Path) -> None:
    assert add(server, [("a.wav", wav_bytes())], headers=None).status_code == 401
    response = httpx.delete(f"{server.http_url}/v1/voices/{CLIP_VOICE}")
    assert response.status_code == 401


def test_models_lists_xtts_with_its_languages(server: Server) -> None:
    assert server.get("/v1/models").status_code == 401
    models = httpx.get(f"{server.http_url}/v1/models", headers=HEADERS).json()
    assert isinstance(models, list)
    model = models[0]
    assert model["model_id"] == "xtts_v2" and model["can_do_text_to_speech"] is True
    languages = {item["language_id"]: item["name"] for item in model["languages"]}
    assert len(languages) == 17 and languages["en"] == "English" and languages["ja"] == "Japanese"
    assert model["maximum_text_length_per_request"] == 600


def test_models_lists_the_elevenlabs_ids_as_names_of_the_one_model(server: Server) -> None:
    models = httpx.get(f"{server.http_url}/v1/models", headers=HEADERS).json()
    by_id = {model["model_id"]: model for model in models}
    assert len(by_id) == len(models)  # each id once
    for alias in ("eleven_multilingual_v2", "eleven_flash_v2_5", "eleven_turbo_v2_5"):
        assert by_id[alias]["name"] == f"XTTS-v2 (as {alias})"
        same = {
            key: value for key, value in by_id[alias].items() if key not in ("model_id", "name")
        }
        assert same == {k: v for k, v in models[0].items() if k not in ("model_id", "name")}


def test_openapi_describes_every_endpoint_with_resolvable_schemas(server: Server) -> None:
    response = server.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/v1/text-to-speech/{voice_id}", "/v1/text-to-speech/{voice_id}/stream",
        "/v1/text-to-speech/{voice_id}/with-timestamps",
        "/v1/text-to-speech/{voice_id}/stream/with-timestamps", "/v1/voices",
        "/v1/voices/{voice_id}", "/v1/voices/add", "/v1/models", "/v2/voices",
        "/v1/voices/settings/default", "/v1/voices/{voice_id}/settings", "/v1/user",
        "/v1/user/subscription", "/v1/audio/speech", "/v1/audio/models",
        "/v1/single-use-token/tts_websocket",
        "/studio_speakers", "/clone_speaker", "/tts_stream", "/tts", "/languages",
    }  # fmt: skip
    assert set(document["paths"]["/v1/voices/{voice_id}"]) == {"get", "delete"}
    schemas = document["components"]["schemas"]
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)))
    assert refs <= set(schemas)
    assert schemas["SpeechRequest"]["required"] == ["text"]
    formats = schemas["OutputFormat"]["enum"]
    assert "opus_48000_192" in formats and "mp3_22050_32" in formats
    speak_op = document["paths"]["/v1/text-to-speech/{voice_id}"]["post"]
    assert {p["name"] for p in speak_op["parameters"]} >= {
        "voice_id", "output_format", "optimize_streaming_latency",
    }  # fmt: skip
    openai_op = document["paths"]["/v1/audio/speech"]["post"]
    assert set(schemas["SpeechCreate"]["required"]) == {"model", "input", "voice"}
    assert openai_op["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OpenAIErrorResponse"
    }
    assert "text/event-stream" in openai_op["responses"]["200"]["content"]
    search_op = document["paths"]["/v2/voices"]["get"]
    assert {p["name"] for p in search_op["parameters"]} == {
        "search", "page_size", "next_page_token",
    }  # fmt: skip


# --- the official SDK (elevenlabs 2.78.0), plain http ----------------------------------------------


@pytest.fixture
def client(server: Server) -> Iterator[ElevenLabs]:
    with httpx.Client(timeout=60) as http:
        yield ElevenLabs(api_key=KEY, base_url=server.http_url, httpx_client=http)


def test_sdk_convert_and_stream(client: ElevenLabs) -> None:
    mp3 = b"".join(client.text_to_speech.convert(CLIP_VOICE, text="Hello from the SDK."))
    assert decode(mp3).sample_rate == 44100
    pcm = b"".join(
        client.text_to_speech.stream(CLIP_VOICE, text="Streaming now.", output_format="pcm_16000")
    )
    assert len(pcm) > 0 and len(pcm) % 2 == 0


def test_sdk_with_timestamps(client: ElevenLabs) -> None:
    result: Any = client.text_to_speech.convert_with_timestamps(
        CLIP_VOICE, text="Timed words.", output_format="pcm_16000"
    )
    assert len(base64.b64decode(result.audio_base_64)) > 0
    assert "".join(result.alignment.characters) == "Timed words."
    chunks = list(
        client.text_to_speech.stream_with_timestamps(
            CLIP_VOICE, text="One. Two.", output_format="pcm_16000"
        )
    )
    assert len(chunks) > 1
    chars = "".join("".join(c.alignment.characters) for c in chunks if c.alignment is not None)
    assert chars == "One. Two."


def test_sdk_voices_and_models(client: ElevenLabs) -> None:
    voices = client.voices.get_all().voices
    assert CLIP_VOICE in {v.voice_id for v in voices}
    assert client.voices.get(CLIP_VOICE).voice_id == CLIP_VOICE
    models = client.models.list()
    assert models[0].model_id == "xtts_v2"
    assert {"eleven_multilingual_v2", "eleven_flash_v2_5"} <= {m.model_id for m in models}


def test_sdk_clones_speaks_with_and_deletes_a_voice(client: ElevenLabs, library: Path) -> None:
    created = client.voices.ivc.create(
        name="SDK voice", files=[("ref.wav", wav_bytes(), "audio/wav")]
    )
    try:
        assert client.voices.get(created.voice_id).name == "SDK voice"
        pcm = b"".join(
            client.text_to_speech.convert(created.voice_id, text="Hi.", output_format="pcm_16000")
        )
        assert len(pcm) > 0
    finally:
        assert client.voices.delete(created.voice_id).status == "ok"
