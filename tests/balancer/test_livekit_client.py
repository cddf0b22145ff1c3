"""livekit's ElevenLabs plugin, unmodified but for its base URL, against a real server (see
conftest.py): streaming over multi-stream-input. Skipped where ``livekit-plugins-elevenlabs`` is
not installed."""

from __future__ import annotations

from balancer_server import KEY, Server
from voice_agent_clients import assert_livekit_speaks, livekit_modules

livekit = livekit_modules()

TEXT = "Hello world. This is a local test of the server."


def test_livekit_streams_through_multi_stream_input(server: Server) -> None:
    assert_livekit_speaks(livekit, f"http://127.0.0.1:{server.port}/v1", KEY, TEXT)
