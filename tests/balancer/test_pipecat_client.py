"""pipecat's ``ElevenLabsTTSService`` (multi-stream-input only), unmodified but for its URL, against
a real server (see conftest.py). Skipped where ``pipecat-ai`` is not installed."""

from __future__ import annotations

import asyncio

import pytest
from balancer_server import CLIP_VOICE, KEY, Server

tts_module = pytest.importorskip("pipecat.services.elevenlabs.tts")
frames_module = pytest.importorskip("pipecat.frames.frames")
test_utils = pytest.importorskip("pipecat.tests.utils")

TEXT = "Hello world. This is a local test of the server."


def test_pipecat_speaks_through_multi_stream_input(server: Server) -> None:
    service = tts_module.ElevenLabsTTSService(
        api_key=KEY,
        url=f"ws://127.0.0.1:{server.port}",
        sample_rate=16000,
        settings=tts_module.ElevenLabsTTSService.Settings(voice=CLIP_VOICE),
    )
    down, _ = asyncio.run(
        test_utils.run_test(
            service,
            frames_to_send=[frames_module.TTSSpeakFrame(TEXT), test_utils.SleepFrame(sleep=3.0)],
        )
    )
    audio = [f for f in down if isinstance(f, frames_module.TTSAudioRawFrame)]
    assert audio and all(f.sample_rate == 16000 and f.num_channels == 1 for f in audio)
    assert sum(len(f.audio) for f in audio) > 16000 * 2 * 0.2  # some speech, not a click
    words = [f.text for f in down if isinstance(f, frames_module.TTSTextFrame)]
    assert " ".join(words).split() == TEXT.split()  # per-word frames from our alignment
    assert any(isinstance(f, frames_module.TTSStoppedFrame) for f in down)  # the context's final
