"""pipecat's ``ElevenLabsTTSService`` (multi-stream-input only), unmodified but for its URL, against
a real server (see conftest.py). Skipped where ``pipecat-ai`` is not installed."""

from __future__ import annotations

from balancer_server import KEY, Server
from voice_agent_clients import assert_pipecat_speaks, pipecat_modules

pipecat = pipecat_modules()

TEXT = "Hello world. This is a local test of the server."


def test_pipecat_speaks_through_multi_stream_input(server: Server) -> None:
    assert_pipecat_speaks(pipecat, f"ws://127.0.0.1:{server.port}", KEY, TEXT)
