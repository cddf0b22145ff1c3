"""coqui's xtts-streaming-server API on a real balancer with the tiny real model (its latents are
real): every route's shape, bad input, streaming and the WAV header, and that a voice's latents
spoken through ``/tts_stream`` give exactly the audio of that voice."""

from __future__ import annotations

import base64
import io
import struct
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile
from balancer_server import CLIP_VOICE, KEY, Server, base_config, start_server
from pyav_decode import decode

from xtts_balancer.settings import hash_api_key

SEED = 7
TEXT = "Hello there. This is a test."
#: Sentences enough that the first audio leaves long before the last one is made.
LONG_TEXT = " ".join(f"Sentence number {n} is here." for n in range(12))


@pytest.fixture(scope="module")
def coqui(coqui_server: Server) -> Server:
    return coqui_server


@pytest.fixture(scope="module")
def speakers(coqui: Server) -> dict[str, dict[str, Any]]:
    reply = httpx.get(f"{coqui.http_url}/studio_speakers", timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def post(server: Server, path: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.http_url}{path}", json=body, timeout=60, **kwargs)


def errors(server: Server, code: str) -> float:
    """``xtts_errors_total`` for ``code``."""
    prefix = f'xtts_errors_total{{error="{code}"}} '
    lines = [x for x in server.get("/metrics").text.splitlines() if x.startswith(prefix)]
    return float(lines[0].split()[-1]) if lines else 0.0


def request(speaker: dict[str, Any], text: str = TEXT, **fields: Any) -> dict[str, Any]:
    return {"text": text, "language": "en", **speaker, **fields}


def test_studio_speakers_are_the_voices_with_their_latents(
    coqui: Server, speakers: dict[str, dict[str, Any]]
) -> None:
    voices = {v["voice_id"] for v in coqui.get("/v1/voices").json()["voices"]}
    assert set(speakers) == voices | {"default"} and CLIP_VOICE in speakers
    for speaker in speakers.values():
        assert set(speaker) == {"speaker_embedding", "gpt_cond_latent"}
        latent = np.asarray(speaker["gpt_cond_latent"])
        assert latent.ndim == 2 and latent.shape[0] == 32 and np.isfinite(latent).all()
        embedding = np.asarray(speaker["speaker_embedding"])
        assert embedding.shape == (512,) and np.isfinite(embedding).all()


def test_clone_speaker_gives_the_latents_of_its_clip(
    coqui: Server, speakers: dict[str, dict[str, Any]], model_files: tuple[Path, Path]
) -> None:
    clip = (model_files[1] / f"{CLIP_VOICE}.wav").read_bytes()
    reply = httpx.post(
        f"{coqui.http_url}/clone_speaker", files={"wav_file": ("me.wav", clip, "audio/wav")},
        timeout=60,
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    cloned = reply.json()
    assert set(cloned) == {"speaker_embedding", "gpt_cond_latent"}
    narrator = speakers[CLIP_VOICE]
    np.testing.assert_allclose(cloned["gpt_cond_latent"], narrator["gpt_cond_latent"], atol=1e-5)
    np.testing.assert_allclose(
        cloned["speaker_embedding"], narrator["speaker_embedding"], atol=1e-5
    )


@pytest.mark.parametrize(
    ("files", "status", "field"),
    [
        ({"wav_file": ("x.wav", b"not audio at all", "audio/wav")}, 422, None),
        ({"other": ("x.wav", b"RIFF", "audio/wav")}, 422, "wav_file"),
    ],
)
def test_clone_speaker_refuses_what_is_not_a_clip(
    coqui: Server, files: dict[str, Any], status: int, field: str | None
) -> None:
    refused = errors(coqui, "invalid_message")
    reply = httpx.post(f"{coqui.http_url}/clone_speaker", files=files, timeout=60)
    assert reply.status_code == status, reply.text
    if field is not None:
        assert reply.json()["detail"][0]["loc"] == ["body", field]
    else:  # the worker refused it: a session failure, counted
        assert "/tmp" not in reply.json()["detail"]["message"]
        assert errors(coqui, "invalid_message") == refused + 1


def test_tts_stream_speaks_with_exactly_the_latents_sent(
    coqui: Server, speakers: dict[str, dict[str, Any]]
) -> None:
    """The same seed with the narrator's latents gives the narrator's audio byte for byte (as
    the ElevenLabs endpoint speaks it), and another voice's latents other audio."""
    chunk = {"stream_chunk_size": 8}  # the server's stream.chunk_codes, as the other endpoint
    mine = post(coqui, "/tts_stream", request(speakers[CLIP_VOICE], add_wav_header=False,
                                              seed=SEED, **chunk))  # fmt: skip
    assert mine.status_code == 200, mine.text
    reference = post(
        coqui, f"/v1/text-to-speech/{CLIP_VOICE}/stream?output_format=pcm_24000",
        {"text": TEXT, "seed": SEED},
    )  # fmt: skip
    assert reference.status_code == 200, reference.text
    assert len(mine.content) > 2400 and len(mine.content) % 2 == 0
    assert mine.content == reference.content
    other = next(name for name in speakers if name not in (CLIP_VOICE, "default"))
    theirs = post(coqui, "/tts_stream", request(speakers[other], add_wav_header=False, seed=SEED,
                                                **chunk))  # fmt: skip
    assert theirs.status_code == 200 and theirs.content != mine.content


def test_tts_stream_sends_a_wav_header_first_by_default(
    coqui: Server, speakers: dict[str, dict[str, Any]]
) -> None:
    reply = post(coqui, "/tts_stream", request(speakers[CLIP_VOICE]))
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "audio/wav"
    riff, _, wave, fmt, _, pcm, channels, rate, _, _, bits, data, _ = struct.unpack(
        "<4sI4s4sIHHIIHH4sI", reply.content[:44]
    )
    assert (riff, wave, fmt, data) == (b"RIFF", b"WAVE", b"fmt ", b"data")
    assert (pcm, channels, rate, bits) == (1, 1, 24000, 16)
    decoded = decode(reply.content)
    assert decoded.sample_rate == 24000 and decoded.channels == 1
    assert decoded.seconds == pytest.approx((len(reply.content) - 44) / 48000, abs=0.01)


def test_tts_stream_sends_audio_while_the_rest_is_made(
    coqui: Server, speakers: dict[str, dict[str, Any]]
) -> None:
    """When its first bytes arrive, fewer sentences are done than the text holds (the metrics
    count one real-time factor per sentence)."""

    def sentences_done() -> float:
        metrics = coqui.get("/metrics").text
        line = next(x for x in metrics.splitlines() if x.startswith("xtts_real_time_factor_count"))
        return float(line.split()[-1])

    before = sentences_done()
    body = request(speakers[CLIP_VOICE], LONG_TEXT, add_wav_header=False)
    with httpx.stream("POST", f"{coqui.http_url}/tts_stream", json=body, timeout=60) as reply:
        assert reply.status_code == 200
        chunks = reply.iter_raw()
        first = next(chunk for chunk in chunks if chunk)
        done_at_first = sentences_done() - before
        rest = b"".join(chunks)
    assert first and rest
    assert done_at_first < 12
    assert sentences_done() - before == 12


def test_tts_answers_a_base64_wav(coqui: Server, speakers: dict[str, dict[str, Any]]) -> None:
    reply = post(coqui, "/tts", request(speakers[CLIP_VOICE], seed=SEED))
    assert reply.status_code == 200, reply.text
    samples, rate = soundfile.read(io.BytesIO(base64.b64decode(reply.json())), dtype="int16")
    assert rate == 24000 and samples.ndim == 1 and samples.size > 2400


def test_languages_lists_the_model_languages(coqui: Server) -> None:
    reply = coqui.get("/languages")
    assert reply.status_code == 200
    assert "en" in reply.json() and reply.json() == sorted(reply.json())


def _bad_latents(speaker: dict[str, Any]) -> list[tuple[dict[str, Any], list[str]]]:
    latent, embedding = speaker["gpt_cond_latent"], speaker["speaker_embedding"]
    return [
        ({"speaker_embedding": embedding[:-1]}, ["body", "speaker_embedding"]),
        ({"gpt_cond_latent": [row[:-1] for row in latent]}, ["body", "gpt_cond_latent"]),
        ({"gpt_cond_latent": [latent[0], latent[1][:-1]]}, ["body", "gpt_cond_latent"]),
        ({"gpt_cond_latent": []}, ["body", "gpt_cond_latent"]),
        ({"gpt_cond_latent": latent * 3}, ["body", "gpt_cond_latent"]),
        ({"gpt_cond_latent": "nope"}, ["body", "gpt_cond_latent"]),
        ({"speaker_embedding": [1e39] * len(embedding)}, ["body"]),
        ({"language": "xx"}, ["body", "language"]),
        ({"text": ""}, ["body", "text"]),
        ({"stream_chunk_size": 0}, ["body", "stream_chunk_size"]),
    ]


@pytest.mark.parametrize("case", range(10))
def test_tts_stream_refuses_bad_latents_with_a_422_naming_the_field(
    coqui: Server, speakers: dict[str, dict[str, Any]], case: int
) -> None:
    change, loc = _bad_latents(speakers[CLIP_VOICE])[case]
    reply = post(coqui, "/tts_stream", request(speakers[CLIP_VOICE]) | change)
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"][0]["loc"][: len(loc)] == loc


def test_non_finite_numbers_are_refused(coqui: Server, speakers: dict[str, dict[str, Any]]) -> None:
    """JSON has no NaN, but Python's parser reads the token: it must not reach the model."""
    body = request(speakers[CLIP_VOICE]) | {"speaker_embedding": []}
    raw = httpx.Request("POST", "/", json=body).content.decode()
    raw = raw.replace('"speaker_embedding":[]', '"speaker_embedding":[NaN' + ",0.0" * 511 + "]")
    reply = httpx.post(
        f"{coqui.http_url}/tts_stream", content=raw, headers={"content-type": "application/json"},
        timeout=60,
    )  # fmt: skip
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"][0]["loc"][:2] == ["body", "speaker_embedding"]


def test_not_json_and_too_large_bodies_are_refused(coqui: Server) -> None:
    bad = httpx.post(f"{coqui.http_url}/tts_stream", content=b"{", timeout=60)
    assert bad.status_code == 422
    huge = httpx.post(f"{coqui.http_url}/tts", content=b" " * (5 << 20), timeout=60)
    assert huge.status_code == 413


def test_the_routes_need_a_key_where_auth_is_on(
    model_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = base_config(*model_files, auth={"api_key_hashes": [hash_api_key(KEY)]})
    srv = start_server(tmp_path_factory.mktemp("coqui-auth"), config)
    try:
        srv.wait_ready()
        assert srv.get("/studio_speakers").status_code == 401
        assert httpx.post(f"{srv.http_url}/tts_stream", json={}).status_code == 401
        keyed = httpx.get(f"{srv.http_url}/studio_speakers", headers={"xi-api-key": KEY})
        assert keyed.status_code == 200 and CLIP_VOICE in keyed.json()
    finally:
        srv.stop()
