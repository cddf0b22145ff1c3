"""livekit's ElevenLabs plugin, unmodified but for its base URL, against a real server (see
conftest.py): streaming over multi-stream-input. Skipped where ``livekit-plugins-elevenlabs`` is
not installed."""

from __future__ import annotations

import asyncio

import pytest
from balancer_server import CLIP_VOICE, KEY, Server

aiohttp = pytest.importorskip("aiohttp")
elevenlabs = pytest.importorskip("livekit.plugins.elevenlabs")

TEXT = "Hello world. This is a local test of the server."


async def _stream(server: Server) -> tuple[int, int, set[int]]:
    """Audio bytes, frames and sample rates livekit's stream() yields for TEXT."""
    async with aiohttp.ClientSession() as session:
        tts = elevenlabs.TTS(
            api_key=KEY, voice_id=CLIP_VOICE, base_url=f"http://127.0.0.1:{server.port}/v1",
            encoding="pcm_16000", http_session=session,
        )  # fmt: skip
        size = count = 0
        rates: set[int] = set()
        async with tts.stream() as stream:
            stream.push_text(TEXT)
            stream.end_input()
            async for event in stream:
                size += len(event.frame.data.tobytes())
                count += 1
                rates.add(event.frame.sample_rate)
        await tts.aclose()
    return size, count, rates


def test_livekit_streams_through_multi_stream_input(server: Server) -> None:
    size, count, rates = asyncio.run(_stream(server))
    assert count > 0 and rates == {16000}
    assert size > 16000 * 2 * 0.2  # some speech, not a click
