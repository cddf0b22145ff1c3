"""Audio out: one stream's encoded audio in pieces with the characters each carries.

:class:`AudioOut` is shared by every dialect: a websocket sends each :class:`Piece` as an audio
message, HTTP writes its bytes (and, with timestamps, its alignment in seconds). It holds back the
last ``HOLDBACK_MS`` of every chunk, so a segment's last piece always has audio to carry the
segment's remaining characters (each character is reported once, docs/protocol.md §2.4.1), and
splits audio at ``max_chunk_ms`` so every websocket frame stays far below the official SDK's
1 MiB limit. :class:`Pacer` keeps audio at most a lead ahead of real time when ``stream.pacing``
is on; its clock restarts with every burst of speech.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np
from prometheus_client import Histogram

from xtts_balancer.alignment import SegmentAligner
from xtts_balancer.encoders import StreamEncoder
from xtts_core.protocol import Alignment

__all__ = ["HOLDBACK_MS", "AudioOut", "Pacer", "Piece"]

#: Audio kept back at the end of each chunk (see the module docstring).
HOLDBACK_MS = 20


@dataclass(frozen=True)
class Piece:
    """Encoded audio and the characters expected in it (times relative to its start)."""

    audio: bytes
    alignment: Alignment | None
    duration_ms: float


class AudioOut:
    """One stream's encoder and aligner: segments in, :class:`Piece` s out."""

    def __init__(
        self, encoder: StreamEncoder, aligner: SegmentAligner, first_audio: Histogram,
        max_chunk_ms: int | None = None,
    ) -> None:  # fmt: skip
        self.encoder = encoder
        self._aligner = aligner
        self._first_audio = first_audio
        self._max_chunk_ms = max_chunk_ms
        self._hold = int(encoder.bytes_per_second * HOLDBACK_MS / 1000) // 2 * 2
        self._held = b""
        self._t0 = time.monotonic()
        self.audio_ms = 0.0
        """Audio of the current segment handed out so far."""
        self.first_audio_s: float | None = None
        """How long the current segment's first audio took (``None``: none yet)."""

    def start(self, text: str, speed: float) -> None:
        """Begin a segment of ``text`` spoken at ``speed``."""
        self._aligner.start(text, speed)
        self._t0 = time.monotonic()
        self.audio_ms = 0.0
        self.first_audio_s = None

    def push(self, samples: np.ndarray) -> list[Piece]:
        """Pieces of the segment's next chunk (float32 samples at the model's rate)."""
        data = self._held + self.encoder.encode(samples)
        cut = max(len(data) - self._hold, 0)
        self._held = data[cut:]
        return self._pieces(data[:cut], last=False)

    def silence(self, samples: int) -> list[Piece]:
        """``samples`` zero samples (a ``<break>``) through the same encoder, so a compressed
        stream stays one file; they carry no characters, and nothing of them is held back."""
        return self.push(np.zeros(samples, np.float32)) + self.end()

    def end(self) -> list[Piece]:
        """The segment's last pieces: what was held back, carrying the remaining characters."""
        data, self._held = self._held + self.encoder.end_segment(), b""
        return self._pieces(data, last=True)

    def finish(self) -> bytes:
        """The stream's last bytes (a compressed encoder's look-ahead), after its last segment."""
        return self.encoder.finish()

    def _pieces(self, data: bytes, *, last: bool) -> list[Piece]:
        parts = self.encoder.split(data, self._max_chunk_ms) if self._max_chunk_ms else [data]
        pieces = []
        for i, part in enumerate(parts):
            duration = self.encoder.duration_ms(part)
            alignment = self._aligner.take(duration, last=last and i == len(parts) - 1)
            if not part and alignment is None:
                continue
            if part and self.first_audio_s is None:
                self.first_audio_s = time.monotonic() - self._t0
                self._first_audio.observe(self.first_audio_s)
            self.audio_ms += duration
            pieces.append(Piece(part, alignment, duration))
        return pieces


class Pacer:
    """Keeps sent audio at most ``lead_ms`` ahead of real time (``None`` = no pacing)."""

    def __init__(self, lead_ms: float | None) -> None:
        self._lead_ms = lead_ms
        self.reset()

    def reset(self) -> None:
        self._start = time.monotonic()
        self._sent_ms = 0.0

    async def wait(self, duration_ms: float) -> None:
        if self._lead_ms is not None:
            ahead = self._sent_ms - (time.monotonic() - self._start) * 1000
            if ahead > self._lead_ms:
                await asyncio.sleep((ahead - self._lead_ms) / 1000)
        self._sent_ms += duration_ms
