"""Audio out: one segment's encoded audio as audio messages with alignment, optionally paced.

:class:`AudioSender` holds back the last ``HOLDBACK_MS`` of every chunk, so the segment's last
message always has audio to carry the segment's remaining characters (each character is reported
once, docs/protocol.md §2.4.1), and splits audio at ``stream.max_chunk_ms`` so every frame
stays far below the official SDK's 1 MiB limit. :class:`Pacer` keeps audio at most a lead ahead of
real time when ``stream.pacing`` is on; its clock restarts with every burst of speech.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import Histogram
from starlette.websockets import WebSocket

from xtts_balancer.alignment import SegmentAligner
from xtts_balancer.encoders import StreamEncoder
from xtts_core.protocol import AudioOutput, AudioOutputMulti

__all__ = ["HOLDBACK_MS", "AudioSender", "Pacer"]

#: Audio kept back at the end of each chunk (see the module docstring).
HOLDBACK_MS = 20


class AudioSender:
    """Turns one segment's encoded audio into messages: holds back ``HOLDBACK_MS`` so the last
    message carries the segment's remaining characters, splits at ``max_chunk_ms``."""

    def __init__(
        self, ws: WebSocket, encoder: StreamEncoder, aligner: SegmentAligner, pacer: Pacer,
        max_chunk_ms: int, first_audio: Histogram, context_id: str | None = None,
    ) -> None:  # fmt: skip
        self._ws = ws
        self._encoder = encoder
        self._aligner = aligner
        self._pacer = pacer
        self._max_chunk_ms = max_chunk_ms
        self._first_audio = first_audio
        self._context_id = context_id  # a multi-stream context: its replies carry the id
        self._t0 = time.monotonic()
        self._held = b""
        self._hold = int(self._encoder.bytes_per_second * HOLDBACK_MS / 1000) // 2 * 2
        self.audio_ms = 0.0
        self.first_audio_s: float | None = None

    async def push(self, data: bytes) -> None:
        data = self._held + data
        cut = max(len(data) - self._hold, 0)
        self._held = data[cut:]
        await self._send(data[:cut], last=False)

    async def finish(self, tail: bytes) -> None:
        await self._send(self._held + tail, last=True)

    async def _send(self, data: bytes, *, last: bool) -> None:
        pieces = self._encoder.split(data, self._max_chunk_ms)
        for i, piece in enumerate(pieces):
            duration = self._encoder.duration_ms(piece)
            alignment = self._aligner.take(duration, last=last and i == len(pieces) - 1)
            fields = {"alignment": alignment, "normalized_alignment": alignment}
            message = (
                AudioOutput.from_audio(piece, **fields)
                if self._context_id is None
                else AudioOutputMulti.from_audio(piece, context_id=self._context_id, **fields)
            )
            await self._pacer.wait(duration)
            await self._ws.send_text(message.to_json())
            if self.first_audio_s is None:
                self.first_audio_s = time.monotonic() - self._t0
                self._first_audio.observe(self.first_audio_s)
            self.audio_ms += duration


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
