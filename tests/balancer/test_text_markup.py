"""Text markup and text switches end to end against the shared real server (conftest.py):
``<break time>`` as silence, ``enable_ssml_parsing``, ``apply_text_normalization: off`` and a first
stream-input message that carries text, on both websockets and over HTTP with the official SDK."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from balancer_server import CLIP_VOICE, KEY, Reply, Server, converse, read_until_closed
from elevenlabs.client import ElevenLabs
from pyav_decode import samples
from test_multi_context import by_context, multi, send, spoken, until_final
from test_stream_input import BOS, EOS, check_alignment

BREAK_TEXT = 'Hello there. <break time="1.5s"/> And now more. '


def silences(audio: np.ndarray, rate: int, threshold: float, min_ms: float = 200) -> list[
    tuple[float, float]
]:  # fmt: skip
    """``(start_ms, length_ms)`` of every run of samples within ``threshold`` of zero that lasts
    at least ``min_ms``."""
    quiet = np.concatenate(([False], np.abs(audio) <= threshold, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(quiet))
    runs = [(start * 1000 / rate, (end - start) * 1000 / rate) for start, end in zip(
        edges[::2], edges[1::2], strict=True
    )]  # fmt: skip
    return [run for run in runs if run[1] >= min_ms]


def pcm16(reply: Reply) -> np.ndarray:
    return np.frombuffer(reply.audio_bytes, "<i2")


def chars_around(reply: Reply, start_ms: float, end_ms: float, bytes_per_ms: float) -> tuple[
    str, str
]:  # fmt: skip
    """The characters of the messages before ``start_ms`` and after ``end_ms`` of the audio;
    a message with characters inside the silence fails the test."""
    before, after, offset = "", "", 0.0
    for message in reply.audio:
        duration = len(base64.b64decode(message["audio"])) / bytes_per_ms
        chars = "".join(message["alignment"]["chars"]) if message["alignment"] else ""
        if chars and offset + duration <= start_ms + 1:
            before += chars
        elif chars:
            assert offset >= end_ms - 1, f"{chars!r} at {offset:.0f} ms is inside the silence"
            after += chars
        offset += duration
    return before, after


# --- <break time> ---------------------------------------------------------------------------------


def test_a_break_is_silence_of_its_length_at_its_place(server: Server) -> None:
    with server.connect() as ws:
        reply = converse(ws, BOS, {"text": BREAK_TEXT}, EOS)
    assert reply.close_code == 1000, reply.messages
    (start, length), *_ = silences(pcm16(reply), 16000, 0, min_ms=1000)
    assert 1495 <= length <= 1530  # the break's samples, exactly zero (pcm_16000)
    assert chars_around(reply, start, start + length, 32) == ("Hello there. ", "And now more. ")
    assert check_alignment(reply, 32) == "Hello there. And now more. "  # the tag is not spoken


@pytest.mark.parametrize(
    ("output_format", "rate"), [("mp3_44100_128", 44100), ("opus_48000_64", 48000)]
)
def test_a_break_in_a_compressed_stream_keeps_one_valid_file(
    server: Server, output_format: str, rate: int
) -> None:
    with server.connect(query=f"output_format={output_format}") as ws:
        reply = converse(ws, BOS, {"text": 'One. <break time="800ms"/> Two. '}, EOS)
    assert reply.close_code == 1000, reply.messages
    audio, decoded_rate = samples(reply.audio_bytes)  # every message's bytes: one file
    assert decoded_rate == rate
    # Near-silence: a tenth of the peak; a lossy codec smears the edges of the silence (Opus
    # at 64 kbit/s by up to about 50 ms on each side).
    quiet = 0.1 * float(np.abs(audio).max())
    lengths = [length for _, length in silences(audio, rate, quiet, min_ms=500)]
    assert len(lengths) == 1 and 700 <= lengths[0] <= 880, lengths


@pytest.mark.parametrize(("output_format", "zero"), [("ulaw_8000", 0xFF), ("alaw_8000", 0xD5)])
def test_a_break_in_g711_is_the_codes_of_zero(
    server: Server, output_format: str, zero: int
) -> None:
    with server.connect(query=f"output_format={output_format}") as ws:
        reply = converse(ws, BOS, {"text": 'One. <break time="600ms"/> Two. '}, EOS)
    assert reply.close_code == 1000, reply.messages
    codes = np.frombuffer(reply.audio_bytes, np.uint8).astype(np.int16) - zero  # 8 bytes per ms
    lengths = [length for _, length in silences(codes, 8000, 0, min_ms=300)]
    assert len(lengths) == 1 and 595 <= lengths[0] <= 630, lengths


def test_a_break_over_three_seconds_is_clamped_and_logged(server: Server) -> None:
    with server.connect() as ws:
        reply = converse(ws, BOS, {"text": 'Wait. <break time="7s"/> Done. '}, EOS)
    assert reply.close_code == 1000, reply.messages
    lengths = [length for _, length in silences(pcm16(reply), 16000, 0, min_ms=1000)]
    assert len(lengths) == 1 and 2995 <= lengths[0] <= 3030
    assert "<break> of 7000 ms clamped to 3000 ms" in server.logs()


def test_a_break_sent_in_two_messages_is_still_one_break(server: Server) -> None:
    """``auto_mode`` speaks every message up to its last space: not inside the tag."""
    with server.connect(query="output_format=pcm_16000&auto_mode=true") as ws:
        reply = converse(ws, BOS, {"text": "Split <break "}, {"text": 'time="1s"/> tag here '}, EOS)
    assert reply.close_code == 1000, reply.messages
    lengths = [length for _, length in silences(pcm16(reply), 16000, 0, min_ms=500)]
    assert len(lengths) == 1 and 995 <= lengths[0] <= 1030
    assert check_alignment(reply, 32) == "Split tag here "


# --- enable_ssml_parsing -----------------------------------------------------------------------------

SSML = '<speak><prosody rate="slow">Slow</prosody> &amp; <emphasis>loud</emphasis>.</speak> '


def test_ssml_is_stripped_with_enable_ssml_parsing(server: Server) -> None:
    with server.connect(query="output_format=pcm_16000&enable_ssml_parsing=true") as ws:
        reply = converse(ws, BOS, {"text": SSML}, EOS)
    assert reply.close_code == 1000, reply.messages
    assert check_alignment(reply, 32) == "Slow & loud. "


def test_ssml_is_spoken_as_sent_without_it(server: Server) -> None:
    with server.connect(query="output_format=pcm_16000&enable_ssml_parsing=false") as ws:
        reply = converse(ws, BOS, {"text": SSML, "flush": True}, EOS)
    assert reply.close_code == 1000, reply.messages
    assert check_alignment(reply, 32) == SSML


# --- apply_text_normalization ------------------------------------------------------------------------


def test_normalisation_off_reads_symbols_as_written(server: Server) -> None:
    """``%`` alone is "percent" when normalised, and nothing to speak as written."""
    with server.connect(query="output_format=pcm_16000&apply_text_normalization=on") as ws:
        reply = converse(ws, BOS, {"text": "% ", "flush": True}, EOS)
    assert reply.close_code == 1000 and reply.audio_bytes, reply.messages
    with server.connect(query="output_format=pcm_16000&apply_text_normalization=off") as ws:
        reply = converse(ws, BOS, {"text": "% ", "flush": True}, EOS)
    assert reply.error is not None and reply.error["error"] == "invalid_message", reply.messages
    assert "nothing to speak" in reply.error["message"] and reply.close_code == 1008


def test_an_invalid_normalisation_value_is_refused(server: Server) -> None:
    with server.connect(query="output_format=pcm_16000&apply_text_normalization=never") as ws:
        ws.send(json.dumps(BOS))
        reply = read_until_closed(ws)
    assert reply.error is not None and reply.error["error"] == "invalid_message"
    assert "apply_text_normalization" in reply.error["message"] and reply.close_code == 1008


# --- a first message with text --------------------------------------------------------------------


def test_a_first_message_with_text_key_and_settings_opens_and_is_spoken(server: Server) -> None:
    first = {
        "text": "Hello first. ", "xi_api_key": KEY, "try_trigger_generation": True,
        "voice_settings": {"stability": 0.3, "similarity_boost": 0.9, "speed": 1.1},
        "generation_config": {"chunk_length_schedule": [50]},
    }  # fmt: skip
    with server.connect(key=None) as ws:
        again = {"text": "And again. ", "voice_settings": first["voice_settings"]}
        reply = converse(ws, first, again, EOS)  # the settings may be repeated unchanged
    assert reply.close_code == 1000, reply.messages
    assert check_alignment(reply, 32) == "Hello first. And again. "


def test_a_first_message_with_text_and_a_wrong_key_is_refused(server: Server) -> None:
    with server.connect(key=None) as ws:
        ws.send(json.dumps({"text": "Hello. ", "xi_api_key": "wrong-key"}))
        reply = read_until_closed(ws)
    assert reply.error is not None and reply.error["error"] == "invalid_api_key"
    assert reply.close_code == 1008 and not reply.audio


def test_a_first_multi_stream_message_with_text_opens_its_context(server: Server) -> None:
    first = {
        "text": "Opening words. ", "context_id": "c1", "xi_api_key": KEY, "flush": True,
        "voice_settings": {"speed": 1.0}, "generation_config": {"chunk_length_schedule": [50]},
    }  # fmt: skip
    with multi(server, query="output_format=pcm_16000&enable_ssml_parsing=true", key=None) as ws:
        send(ws, first, {"text": '<break time="500ms"/><s>More.</s> ', "context_id": "c1"})
        send(ws, {"context_id": "c1", "flush": True}, {"context_id": "c1", "close_context": True})
        reply = until_final(ws, "c1")
        send(ws, {"close_socket": True})
    chars, _ = spoken(by_context(reply)["c1"])
    assert chars == "Opening words. More. "
    audio = np.concatenate([
        np.frombuffer(base64.b64decode(m["audio"]), "<i2") for m in reply.audio
    ])  # fmt: skip
    lengths = [length for _, length in silences(audio, 16000, 0, min_ms=300)]
    assert len(lengths) == 1 and 495 <= lengths[0] <= 530


# --- HTTP, with the official SDK --------------------------------------------------------------------


@pytest.fixture
def sdk(server: Server) -> Iterator[ElevenLabs]:
    with httpx.Client(timeout=60) as http:
        yield ElevenLabs(api_key=KEY, base_url=server.http_url, httpx_client=http)


def test_sdk_convert_honours_breaks(sdk: ElevenLabs) -> None:
    audio = b"".join(sdk.text_to_speech.convert(
        voice_id=CLIP_VOICE, text='First part. <break time="1s"/> Second part.',
        output_format="pcm_16000",
    ))  # fmt: skip
    lengths = [length for _, length in silences(np.frombuffer(audio, "<i2"), 16000, 0, 500)]
    assert len(lengths) == 1 and 995 <= lengths[0] <= 1030


def test_sdk_timestamps_leave_the_break_out_of_the_alignment(sdk: ElevenLabs) -> None:
    answer = sdk.text_to_speech.convert_with_timestamps(
        voice_id=CLIP_VOICE, text='Left. <break time="500ms"/> Right.', output_format="pcm_16000"
    )
    alignment = answer.alignment
    assert alignment is not None
    assert "".join(alignment.characters) == "Left. Right."
    gap = alignment.character_start_times_seconds[6] - alignment.character_end_times_seconds[5]
    assert gap >= 0.5  # "R" is timed after the silence that follows "Left. "


def test_sdk_convert_with_normalisation_off(sdk: ElevenLabs) -> None:
    from elevenlabs.core.api_error import ApiError

    spelt = b"".join(sdk.text_to_speech.convert(
        voice_id=CLIP_VOICE, text="%", output_format="pcm_16000", apply_text_normalization="auto",
    ))  # fmt: skip
    assert spelt
    with pytest.raises(ApiError) as info:
        b"".join(sdk.text_to_speech.convert(
            voice_id=CLIP_VOICE, text="%", output_format="pcm_16000",
            apply_text_normalization="off",
        ))  # fmt: skip
    assert info.value.status_code == 422 and "nothing to speak" in str(info.value.body)
