"""Decoding test output with PyAV (an independent decoder: FFmpeg's, not our encoder's view)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np


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


def samples(data: bytes) -> tuple[np.ndarray, int]:
    """Every decoded sample of ``data`` (mono float32) and the sample rate."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        frames = [
            frame.to_ndarray().astype(np.float32).reshape(-1) for frame in container.decode(stream)
        ]
        return np.concatenate(frames), stream.codec_context.sample_rate
