"""The output encoders without a server: every format decodes, compressed ones incrementally."""

from __future__ import annotations

import numpy as np
import pytest
from pyav_decode import decode

from xtts_balancer.audio import AudioEncoder, streaming_wav_header
from xtts_balancer.encoders import CompressedEncoder, content_type, make_encoder
from xtts_core.protocol import AudioFormat, OutputFormat

RATE = 24000
COMPRESSED = [f for f in OutputFormat if f.audio_format.codec in ("mp3", "opus")]


def sine(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.mark.parametrize("fmt", COMPRESSED, ids=lambda f: f.value)
def test_compressed_stream_is_incremental_and_decodes(fmt: OutputFormat) -> None:
    spec = fmt.audio_format
    encoder = make_encoder(spec, RATE)
    assert isinstance(encoder, CompressedEncoder)
    audio = sine(1.2)
    pieces = [encoder.encode(audio[i : i + 2400]) for i in range(0, audio.size, 2400)]  # 100 ms
    assert any(pieces[:3]), "nothing came out in the first 300 ms of audio"
    assert encoder.end_segment() == b""  # the encoder runs on across segments
    pieces.append(encoder.finish())
    assert encoder.finish() == b""  # finishing twice adds nothing
    decoded = decode(b"".join(pieces))
    assert decoded.container == {"mp3": "mp3", "opus": "ogg"}[spec.codec]
    assert decoded.sample_rate == spec.sample_rate and decoded.channels == 1
    seconds = decoded.seconds
    # mp3 adds the encoder's delay and pads to whole frames; Opus trims its pre-skip exactly.
    assert 1.2 - 0.005 <= seconds <= 1.2 + (0.1 if spec.codec == "mp3" else 0.005)


def test_mp3_size_follows_the_bit_rate() -> None:
    encoder = make_encoder(OutputFormat.MP3_44100_64.audio_format, RATE)
    data = encoder.encode(sine(2.0)) + encoder.finish()
    assert encoder.duration_ms(data) == pytest.approx(2000, rel=0.06)
    assert all(len(piece) <= 64_000 // 8 // 10 for piece in encoder.split(data, 100))
    assert b"".join(encoder.split(data, 100)) == data


def test_two_segments_make_one_continuous_stream() -> None:
    encoder = make_encoder(OutputFormat.OPUS_48000_64.audio_format, RATE)
    data = encoder.encode(sine(0.5)) + encoder.end_segment() + encoder.encode(sine(0.3))
    data += encoder.finish()
    assert decode(data).seconds == pytest.approx(0.8, abs=0.005)


@pytest.mark.parametrize(
    ("fmt", "bytes_per_sample"),
    [(OutputFormat.PCM_16000, 2), (OutputFormat.ULAW_8000, 1), (OutputFormat.WAV_22050, 2)],
)
def test_raw_formats_keep_their_encoder(fmt: OutputFormat, bytes_per_sample: int) -> None:
    encoder = make_encoder(fmt.audio_format, RATE)
    assert isinstance(encoder, AudioEncoder)
    data = encoder.encode(sine(1.0)) + encoder.end_segment() + encoder.finish()
    assert len(data) == fmt.audio_format.sample_rate * bytes_per_sample


def test_content_types() -> None:
    types = {f.value: content_type(f.audio_format) for f in OutputFormat}
    assert types["mp3_44100_128"] == "audio/mpeg" and types["opus_48000_64"] == "audio/ogg"
    assert types["pcm_24000"] == "audio/pcm" and types["wav_16000"] == "audio/wav"
    assert all(value.startswith("audio/") for value in types.values())


def test_compressed_encoder_refuses_raw_formats() -> None:
    with pytest.raises(ValueError, match="cannot encode pcm"):
        CompressedEncoder(OutputFormat.PCM_16000.audio_format, RATE)


@pytest.mark.parametrize(
    ("fmt", "container"),
    [(AudioFormat("aac", 24000, 64), "aac"), (AudioFormat("flac", 24000, 384), "flac")],
    ids=["aac", "flac"],
)
def test_aac_and_flac_streams_are_incremental_and_every_prefix_of_frames_decodes(
    fmt: AudioFormat, container: str
) -> None:
    """ADTS frames and a FLAC stream: what came out so far is already a valid file."""
    encoder = make_encoder(fmt, RATE)
    assert isinstance(encoder, CompressedEncoder)
    audio = sine(1.5)
    pieces = [encoder.encode(audio[i : i + 2400]) for i in range(0, audio.size, 2400)]
    assert any(pieces[:3]), "nothing came out in the first 300 ms of audio"
    early = decode(b"".join(pieces[:8]))  # 0.8 s in, before the encoder finished
    assert early.container == container and early.sample_rate == 24000 and early.seconds > 0.3
    decoded = decode(b"".join(pieces) + encoder.end_segment() + encoder.finish())
    assert decoded.container == container and decoded.channels == 1
    # AAC pads to whole 1024-sample frames and adds its priming; FLAC is exact.
    assert 1.5 - 0.005 <= decoded.seconds <= 1.5 + (0.15 if fmt.codec == "aac" else 0.005)


def test_streaming_wav_header_decodes_with_the_samples_after_it() -> None:
    pcm = make_encoder(AudioFormat("pcm", 24000, None), RATE)
    data = streaming_wav_header(24000) + pcm.encode(sine(0.5)) + pcm.finish()
    decoded = decode(data)
    assert (decoded.container, decoded.sample_rate, decoded.channels) == ("wav", 24000, 1)
    assert decoded.seconds == pytest.approx(0.5, abs=0.001)
