"""pipecat's ``XTTSService`` (a client of coqui's xtts-streaming-server), unmodified but for its
URL, against a real balancer without API keys (see conftest.py). Skipped where ``pipecat-ai`` is
not installed; the ``client-pipecat`` env's ``test`` script runs it."""

from __future__ import annotations

from balancer_server import Server
from voice_agent_clients import assert_pipecat_xtts_speaks, pipecat_modules

pipecat = pipecat_modules()

TEXT = "Hello world. This is a local test of the coqui API."


def test_pipecat_xtts_speaks_through_the_coqui_api(coqui_server: Server) -> None:
    assert_pipecat_xtts_speaks(pipecat, coqui_server.http_url, TEXT)
