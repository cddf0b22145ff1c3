"""Output encoding: model audio (float32, 24 kHz) -> the bytes of a session's ``output_format``.

``pcm_R`` is signed 16-bit little-endian mono at R Hz; ``ulaw_8000``/``alaw_8000`` are G.711 at
8 kHz (docs/protocol.md §2.8). Rate conversion uses the core's
:class:`~xtts_core.audio.StreamingResampler`, which carries the filter state across the chunks of
a segment, so chunk joins do not click (resampling each chunk alone would). Each segment is flushed at its end (the model's audio starts and ends
there), which gives exactly the one-shot resampling of that segment. The G.711 encoders are the
classic Sun reference algorithms (as in CPython's former ``audioop``), vectorised with numpy.
"""

from __future__ import annotations

import struct

import numpy as np
import torch

from xtts_core.audio import StreamingResampler
from xtts_core.protocol import AudioFormat

__all__ = ["AudioEncoder", "alaw_encode", "pcm16", "streaming_wav_header", "ulaw_encode"]

_SEG_ULAW_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_SEG_ALAW_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def streaming_wav_header(sample_rate: int) -> bytes:
    """The RIFF/WAV header of 16-bit mono PCM of unknown length, sent before the samples: both
    sizes are 0xFFFFFFFF ("to the end of the stream"), as streamed WAV is written when the
    length cannot be known up front."""
    unknown = 0xFFFFFFFF
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    return (
        b"RIFF" + struct.pack("<I", unknown) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"data" + struct.pack("<I", unknown)
    )  # fmt: skip


def pcm16(samples: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> int16, clipped and rounded to nearest."""
    out: np.ndarray = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
    return out


def ulaw_encode(pcm: np.ndarray) -> bytes:
    """G.711 μ-law bytes of int16 samples."""
    value = pcm.astype(np.int32) >> 2
    mask = np.where(value < 0, 0x7F, 0xFF)
    value = np.minimum(np.abs(value), 8159) + (0x84 >> 2)
    seg = np.searchsorted(_SEG_ULAW_END, value, side="left")
    code = (np.minimum(seg, 7) << 4) | ((value >> (np.minimum(seg, 7) + 1)) & 0xF)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8).tobytes()


def alaw_encode(pcm: np.ndarray) -> bytes:
    """G.711 A-law bytes of int16 samples."""
    value = pcm.astype(np.int32) >> 3
    mask = np.where(value >= 0, 0xD5, 0x55)
    value = np.where(value >= 0, value, -value - 1)
    seg = np.searchsorted(_SEG_ALAW_END, value, side="left")
    low = np.where(seg < 2, value >> 1, value >> np.clip(seg, 0, 7)) & 0xF
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | low)
    return (code ^ mask).astype(np.uint8).tobytes()


class AudioEncoder:
    """One session's encoder: resample (stateful within a segment) and encode."""

    def __init__(self, fmt: AudioFormat, source_rate: int) -> None:
        if fmt.codec not in ("pcm", "ulaw", "alaw"):
            raise ValueError(f"cannot encode {fmt.codec}")
        self.format = fmt
        self._resampler = (
            StreamingResampler(source_rate, fmt.sample_rate)
            if source_rate != fmt.sample_rate
            else None
        )
        self.bytes_per_second = fmt.sample_rate * (2 if fmt.codec == "pcm" else 1)

    def encode(self, samples: np.ndarray) -> bytes:
        """Bytes for the next float32 chunk of the current segment (some audio may be held back)."""
        if self._resampler is not None:
            samples = self._resampler.push(
                torch.from_numpy(np.require(samples, requirements="W"))
            ).numpy()
        return self._encode(samples)

    def end_segment(self) -> bytes:
        """The held-back end of the current segment; the next chunk starts a new one."""
        if self._resampler is None:
            return b""
        return self._encode(self._resampler.flush().numpy())

    def finish(self) -> bytes:
        """Nothing: raw formats hold no audio across segments (compare the compressed encoders)."""
        return b""

    def _encode(self, samples: np.ndarray) -> bytes:
        pcm = pcm16(samples)
        if self.format.codec == "ulaw":
            return ulaw_encode(pcm)
        if self.format.codec == "alaw":
            return alaw_encode(pcm)
        return pcm.astype("<i2").tobytes()

    def duration_ms(self, data: bytes) -> float:
        return len(data) * 1000.0 / self.bytes_per_second

    def split(self, data: bytes, max_ms: int) -> list[bytes]:
        """``data`` cut into pieces of at most ``max_ms`` (never splitting a sample)."""
        step = max(int(self.bytes_per_second * max_ms / 1000) // 2 * 2, 2)
        return [data[i : i + step] for i in range(0, len(data), step)]
