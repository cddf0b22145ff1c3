"""What the OpenAI speech tests (balancer and broker) share: the tone server's set-up and how
each ``response_format`` is checked (decoded with PyAV: FFmpeg's decoders, not our encoders'
view)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from balancer_server import CLIP_VOICE, base_config
from pyav_decode import decode

#: Tone per character: durations are predictable without a checkpoint.
MS_PER_CHAR = 10
TEXT = "Hello there. How are you today?"
#: Spoken in about 6 s, made in real time: still being made when its first bytes arrive.
LONG_TEXT = "Speak slowly now, please. " * 24
FORMATS = ["mp3", "opus", "aac", "flac", "wav", "pcm"]
CONTENT_TYPES = {
    "mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
    "wav": "audio/wav", "pcm": "audio/pcm",
}  # fmt: skip
#: Container PyAV reports and sample rate for each format.
DECODED = {
    "mp3": ("mp3", 24000), "opus": ("ogg", 48000), "aac": ("aac", 24000),
    "flac": ("flac", 24000), "wav": ("wav", 24000),
}  # fmt: skip
#: What the encoder may add to the true duration (mp3 and aac pad to whole frames).
SLACK_S = {"mp3": 0.12, "opus": 0.03, "aac": 0.15, "flac": 0.01, "wav": 0.01}


def tone_config(voices: Path, slots: int = 2) -> dict[str, Any]:
    """``base_config`` on the tone backend at real time, with ``slots`` per worker and the clip
    of ``voices`` (written here) as :data:`~balancer_server.CLIP_VOICE`."""
    soundfile.write(voices / f"{CLIP_VOICE}.wav", np.zeros(22050, np.float32), 22050)
    config = base_config(Path(), voices)
    config["model"] = {
        "backend": "tone", "voices_dir": str(voices),
        "backend_options": {"ms_per_char": MS_PER_CHAR, "realtime_factor": 1.0},
    }  # fmt: skip
    config["workers"]["slots_per_worker"] = slots
    config["limits"]["max_text_chars"] = 2000
    return config


def check_audio(data: bytes, fmt: str, seconds: float) -> None:
    """``data`` decodes as ``fmt`` at its rate, mono, ``seconds`` long (within the codec's
    padding)."""
    if fmt == "pcm":
        assert len(data) % 2 == 0
        assert abs(len(data) / 2 / 24000 - seconds) < 0.005
        return
    decoded = decode(data)
    assert (decoded.container, decoded.sample_rate) == DECODED[fmt]
    assert decoded.channels == 1
    assert seconds - 0.005 <= decoded.seconds <= seconds + SLACK_S[fmt], decoded


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
