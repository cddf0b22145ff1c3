"""The stream-input websocket against a real server (see conftest.py): protocol rules end to end."""

from __future__ import annotations

import base64
import json
import time

import pytest
from balancer_server import CLIP_VOICE, KEY, Reply, Server, converse, read_until_closed
from websockets.exceptions import ConnectionClosed

BOS = {"text": " ", "voice_settings": {"stability": 0.5, "similarity_boost": 0.8}}
EOS = {"text": ""}


def check_alignment(reply: Reply, bytes_per_ms: float) -> str:
    """Every audio message's alignment lies inside its own audio; returns the joined chars."""
    chars = []
    for message in reply.audio:
        duration = round(len(base64.b64decode(message["audio"])) / bytes_per_ms)
        alignment = message["alignment"]
        assert message["normalizedAlignment"] == alignment
        assert message["isFinal"] is None
        if alignment is None:
            continue
        starts, durations = alignment["charStartTimesMs"], alignment["charDurationsMs"]
        assert len(alignment["chars"]) == len(starts) == len(durations) > 0
        assert starts[0] == 0 and sum(durations) == duration
        assert all(a + d == b for a, d, b in zip(starts, durations, starts[1:], strict=False))
        chars += alignment["chars"]
    return "".join(chars)


def test_stream_speaks_every_sentence_then_final_and_close_1000(server: Server) -> None:
    with server.connect() as ws:
        reply = converse(
            ws, BOS, {"text": "Hello there. "}, {"text": "How are you"}, {"text": " today? "}, EOS
        )
    assert reply.close_code == 1000
    assert reply.messages[-1] == {
        "audio": None, "isFinal": True, "normalizedAlignment": None, "alignment": None,
    }  # fmt: skip
    assert all(m.get("isFinal") is not True for m in reply.messages[:-1])
    pcm = reply.audio_bytes
    assert len(pcm) > 0 and len(pcm) % 2 == 0
    # Each character once, in order, segments joined by one space (pcm_16000: 32 bytes per ms).
    assert check_alignment(reply, 32) == "Hello there. How are you today? "


def test_sentence_end_starts_generation_before_end_of_stream(server: Server) -> None:
    with server.connect() as ws:
        ws.send(json.dumps(BOS))
        ws.send(json.dumps({"text": "First sentence here. Second one "}))
        first = json.loads(ws.recv(timeout=30))  # audio before EOS: the sentence end was enough
        assert first["audio"]
        reply = converse(ws, EOS)
    assert reply.close_code == 1000
    chars = "".join(first["alignment"]["chars"]) if first["alignment"] else ""
    assert chars + check_alignment(reply, 32) == "First sentence here. Second one "


def test_flush_speaks_the_buffer_without_final(server: Server) -> None:
    with server.connect() as ws:
        ws.send(json.dumps(BOS))
        ws.send(json.dumps({"text": "short", "flush": True}))
        got = [json.loads(ws.recv(timeout=30))]
        while True:  # the rest of the flushed audio, then silence
            try:
                got.append(json.loads(ws.recv(timeout=1.5)))
            except TimeoutError:
                break
        assert all(m["audio"] and m["isFinal"] is None for m in got)
        reply = converse(ws, {"text": " "}, EOS)  # a keep-alive, then the end
    assert reply.close_code == 1000
    assert reply.messages == [
        {"audio": None, "isFinal": True, "normalizedAlignment": None, "alignment": None}
    ]


@pytest.mark.parametrize(
    ("output_format", "bytes_per_ms"), [("ulaw_8000", 8), ("alaw_8000", 8), ("pcm_44100", 88.2)]
)
def test_output_formats(server: Server, output_format: str, bytes_per_ms: float) -> None:
    with server.connect(query=f"output_format={output_format}") as ws:
        reply = converse(ws, BOS, {"text": "Hi there. "}, EOS)
    assert reply.close_code == 1000
    assert check_alignment(reply, bytes_per_ms) == "Hi there. "
    if output_format.startswith("pcm"):
        assert len(reply.audio_bytes) % 2 == 0


def test_original_init_request_and_query_parameters(server: Server) -> None:
    init = {
        "type": "ttsInitRequest", "audio_format": "pcm_24000",
        "generation_config": {"speed": 1.1, "chunk_length_schedule": [50]},
    }  # fmt: skip
    query = "language=en&speed=0.9&stream_chunk_size=6&overlap_wav_len=512&left_context_seconds=1"
    with server.connect(query=query) as ws:
        reply = converse(ws, init, BOS, {"text": "Hello. "}, EOS)
    assert reply.close_code == 1000
    assert check_alignment(reply, 48) == "Hello. "


def test_default_voice_and_named_speaker(server: Server) -> None:
    for voice in ("default", "Random%20Speaker"):
        with server.connect(voice=voice) as ws:
            reply = converse(ws, BOS, {"text": "Hi. "}, EOS)
        assert reply.close_code == 1000, reply.messages


def test_key_in_first_message_and_bearer_header(server: Server) -> None:
    with server.connect(key=None) as ws:
        reply = converse(ws, {**BOS, "xi_api_key": KEY}, {"text": "Hi. "}, EOS)
    assert reply.close_code == 1000
    with server.connect(key=None, query=f"output_format=pcm_16000&xi_api_key={KEY}") as ws:
        reply = converse(ws, BOS, EOS)
    assert reply.close_code == 1000 and reply.messages[-1]["isFinal"] is True


@pytest.mark.parametrize(
    ("key", "first", "error"),
    [
        (None, BOS, "invalid_api_key"),
        ("wrong-key", BOS, "invalid_api_key"),
        (None, {**BOS, "xi_api_key": "wrong-key"}, "invalid_api_key"),
    ],
)
def test_bad_or_missing_key_is_refused_with_1008(
    server: Server, key: str | None, first: dict[str, object], error: str
) -> None:
    with server.connect(key=key) as ws:
        reply = converse(ws, first, {"text": "Hi. "}, EOS)
    assert reply.error is not None and reply.error["error"] == error
    assert reply.error["code"] == 1008 and reply.close_code == 1008
    assert not reply.audio


@pytest.mark.parametrize(
    ("voice", "query", "frames", "error", "code"),
    [
        (CLIP_VOICE, "", ["not json"], "invalid_message", 1008),
        (CLIP_VOICE, "", ["[1, 2]"], "invalid_message", 1008),
        (CLIP_VOICE, "", [b"\x00\x01"], "unsupported_data", 1003),
        (CLIP_VOICE, "", ['{"text": 5}'], "invalid_message", 1008),
        (CLIP_VOICE, "", [json.dumps({"text": "x" * 5000})], "message_too_big", 1009),
        (CLIP_VOICE, "", [json.dumps({"text": "word " * 130})], "max_character_limit_exceeded", 1008),
        (CLIP_VOICE, "output_format=wav_16000", [BOS], "unsupported_output_format", 1008),
        (CLIP_VOICE, "output_format=pcm_1234", [BOS], "unsupported_output_format", 1008),
        (CLIP_VOICE, "inactivity_timeout=abc", [BOS], "invalid_message", 1008),
        (CLIP_VOICE, "language_code=xx", [BOS], "invalid_message", 1008),
        (CLIP_VOICE, "", [{"text": " ", "voice_settings": {"stability": 5}}], "invalid_message", 1008),
        (CLIP_VOICE, "", [BOS, {"text": "Hi ", "voice_settings": {"stability": 0.1}}], "invalid_message", 1008),
        ("no-such-voice", "", [BOS], "voice_not_found", 1008),
    ],
)  # fmt: skip
def test_bad_input_gets_an_error_and_a_close(
    server: Server, voice: str, query: str, frames: list[object], error: str, code: int
) -> None:
    with server.connect(voice=voice, query=query or "output_format=pcm_16000") as ws:
        for frame in frames:
            try:
                ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))
            except ConnectionClosed:
                break
        reply = read_until_closed(ws)
    assert reply.error is not None, reply.messages
    assert reply.error["error"] == error and reply.error["code"] == code
    assert reply.close_code == code and reply.close_reason
    assert server.get("/health").status_code == 200


def test_inactivity_counts_only_client_silence(server: Server) -> None:
    with server.connect(query="output_format=pcm_16000&inactivity_timeout=1") as ws:
        ws.send(json.dumps(BOS))
        for _ in range(4):  # keep-alives every 0.5 s keep a 1 s timeout at bay
            time.sleep(0.5)
            ws.send(json.dumps({"text": " "}))
        reply = read_until_closed(ws, timeout=10)
    assert reply.close_code == 1008
    assert reply.error is not None and reply.error["error"] == "input_timeout_exceeded"
    assert reply.error["message"].startswith(
        "Have not received a new text input within the timeout of 1 seconds."
    )
