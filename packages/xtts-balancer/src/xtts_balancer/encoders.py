"""Compressed output: ``mp3_*``, ``opus_48000_*``, aac and flac encoded incrementally with PyAV
(FFmpeg).

One :class:`CompressedEncoder` lives as long as one stream (a websocket session or an HTTP
request), so the bytes it hands out concatenate into one valid file: raw MPEG audio frames for
mp3 (no ID3 tag, no Xing frame, which would need seeking back), an Ogg/Opus stream for opus
(docs/protocol.md §2.8), ADTS frames for aac (each frame carries its own header) and a FLAC
stream for flac (the OpenAI speech API's formats). The FLAC muxer would seek back at the end to
write the total length and checksum into its header; the sink cannot seek, so the header keeps
"length unknown", which every FLAC decoder accepts. Every :meth:`~CompressedEncoder.encode` returns whatever the
encoder has finished so far, so the first bytes leave as soon as the first audio exists; only
the encoder's own look-ahead (one MPEG frame, a few ms of Opus) waits for :meth:`finish`. Ogg
pages are cut every 20 ms instead of FFmpeg's default second, for the same reason.

Segments do not flush the encoder (that would end the file), so :meth:`end_segment` returns
nothing and the stream's last audio comes out of :meth:`finish`. Durations of compressed bytes
are nominal (bytes at the constant bit rate), as livekit computes them; FLAC has no constant bit
rate, so its formats name the uncompressed rate (16-bit samples) and its durations are lower
bounds.

:func:`make_encoder` picks this or :class:`~xtts_balancer.audio.AudioEncoder` for a format.
"""

from __future__ import annotations

from typing import Protocol

import av
import numpy as np

from xtts_balancer.audio import AudioEncoder
from xtts_core.protocol import AudioFormat

__all__ = ["CompressedEncoder", "StreamEncoder", "content_type", "make_encoder"]

#: FFmpeg muxer, codec and muxer options per compressed codec.
_MUXERS: dict[str, tuple[str, str, dict[str, str]]] = {
    "mp3": ("mp3", "libmp3lame", {"write_xing": "0", "id3v2_version": "0"}),
    "opus": ("ogg", "libopus", {"page_duration": "20000"}),
    "aac": ("adts", "aac", {}),
    "flac": ("flac", "flac", {}),
}

_CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "pcm": "audio/pcm",
    "ulaw": "audio/basic",
    "alaw": "audio/x-alaw-basic",
    "wav": "audio/wav",
    "aac": "audio/aac",
    "flac": "audio/flac",
}


class StreamEncoder(Protocol):
    """What the senders need of an encoder, raw or compressed."""

    bytes_per_second: int

    def encode(self, samples: np.ndarray) -> bytes: ...

    def end_segment(self) -> bytes: ...

    def finish(self) -> bytes: ...

    def duration_ms(self, data: bytes) -> float: ...

    def split(self, data: bytes, max_ms: int) -> list[bytes]: ...


def content_type(fmt: AudioFormat) -> str:
    """The HTTP ``Content-Type`` of audio in ``fmt``."""
    return _CONTENT_TYPES[fmt.codec]


def make_encoder(fmt: AudioFormat, source_rate: int) -> StreamEncoder:
    """A fresh encoder for one stream of ``fmt`` from float32 mono audio at ``source_rate``."""
    if fmt.codec in _MUXERS:
        return CompressedEncoder(fmt, source_rate)
    if fmt.codec == "wav":  # the whole-file endpoint adds the RIFF header around raw PCM
        return AudioEncoder(AudioFormat("pcm", fmt.sample_rate, None), source_rate)
    return AudioEncoder(fmt, source_rate)


class _Sink:
    """The file PyAV writes to: collects bytes until they are taken."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        return len(data)

    def take(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


class CompressedEncoder:
    """One stream's mp3, Ogg/Opus, aac or flac encoder (see the module docstring)."""

    def __init__(self, fmt: AudioFormat, source_rate: int) -> None:
        if fmt.codec not in _MUXERS or fmt.bitrate_kbps is None:
            raise ValueError(f"cannot encode {fmt.codec} incrementally")
        muxer, codec, options = _MUXERS[fmt.codec]
        self.format = fmt
        self.bytes_per_second = fmt.bitrate_kbps * 125
        self._source_rate = source_rate
        self._sink = _Sink()
        self._container = av.open(self._sink, "w", format=muxer, options=options)
        stream = self._container.add_stream(codec, rate=fmt.sample_rate, layout="mono")
        assert isinstance(stream, av.audio.stream.AudioStream)
        self._stream = stream
        self._stream.bit_rate = fmt.bitrate_kbps * 1000
        self._finished = False

    def encode(self, samples: np.ndarray) -> bytes:
        """The bytes the encoder has ready after taking ``samples`` (may be empty)."""
        if samples.size:
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples, dtype=np.float32)[None, :], format="flt",
                layout="mono",
            )  # fmt: skip
            frame.sample_rate = self._source_rate
            self._mux(frame)
        return self._sink.take()

    def end_segment(self) -> bytes:
        """Nothing: the encoder runs on across segments (see the module docstring)."""
        return b""

    def finish(self) -> bytes:
        """The encoder's held-back audio and the container's trailer; the stream is complete."""
        if not self._finished:
            self._finished = True
            self._mux(None)
            self._container.close()
        return self._sink.take()

    def duration_ms(self, data: bytes) -> float:
        return len(data) * 1000.0 / self.bytes_per_second

    def split(self, data: bytes, max_ms: int) -> list[bytes]:
        """``data`` in pieces of at most ``max_ms`` at the nominal bit rate (bytes concatenate)."""
        step = max(self.bytes_per_second * max_ms // 1000, 1)
        return [data[i : i + step] for i in range(0, len(data), step)]

    def _mux(self, frame: av.AudioFrame | None) -> None:
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
