"""Decoding test output with PyAV (an independent decoder: FFmpeg's, not our encoder's view)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av


@dataclass(frozen=True)
class Decoded:
    container: str
    sample_rate: int
    seconds: float
    channels: int


def decode(data: bytes) -> Decoded:
    """What ``data`` holds: container format, sample rate, duration and channel count."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        samples = 0
        for frame in container.decode(stream):
            samples += frame.samples
        context = stream.codec_context
        rate = context.sample_rate
        return Decoded(container.format.name, rate, samples / rate, context.channels)
