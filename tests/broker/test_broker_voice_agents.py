"""pipecat's ``ElevenLabsTTSService`` and livekit's ElevenLabs plugin, unmodified but for their
URL, through a real broker to a real balancer (issue 7's proof; the same clients straight to a
balancer are in tests/balancer/test_pipecat_client.py and test_livekit_client.py).

Both clients speak only ``multi-stream-input``, so this proves the broker relays that socket (auth
at the broker, a signed stream to the balancer, ``contextId`` replies passed through) for the
clients people actually use. One broker (in this process, plain http/ws: neither client needs
TLS) and one balancer in broker mode (one worker on the tiny random checkpoint), per module. Each
test skips where its client is not installed: each client has its own Hatch env
(``client-pipecat``, ``client-livekit``), whose ``test`` script runs that client's test here.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from broker_servers import CLIENT_KEY, SECRET, BrokerThread, eventually

pytest.importorskip("xtts_balancer", reason="needs xtts-balancer (and torch) for a real balancer")

# The helpers that start a real balancer live with the balancer tests (balancer_server.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "balancer"))
from balancer_server import CLIP_VOICE, Server, base_config, start_server
from voice_agent_clients import (
    assert_livekit_speaks,
    assert_pipecat_speaks,
    livekit_modules,
    pipecat_modules,
)

pytestmark = pytest.mark.timeout(180)

TEXT = "Hello world. This is a local test through the broker."


@dataclass
class Cluster:
    broker: BrokerThread
    balancer: Server

    def routed(self) -> int:
        """Streams the broker has routed (``xtts_broker_sessions_routed_total``), all balancers."""
        metrics = httpx.get(self.broker.url + "/metrics", timeout=10).text
        return sum(
            int(float(line.rsplit(" ", 1)[1]))
            for line in metrics.splitlines()
            if line.startswith("xtts_broker_sessions_routed_total{")
        )


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from xtts_core.random_checkpoint import write_random_checkpoint

    tmp = tmp_path_factory.mktemp("voice-agents")
    model_dir = write_random_checkpoint(tmp / "model", "tiny", seed=0, speakers=(CLIP_VOICE,))
    voices = tmp / "voices"  # no clips: the checkpoint's named speaker is the voice
    voices.mkdir()
    broker = BrokerThread(cluster={"heartbeat_interval_s": 1.0, "heartbeat_ttl_s": 5.0})
    broker.start("deep")
    try:
        config = base_config(model_dir, voices)
        config["service"].update(
            standalone_mode=False, broker_host="127.0.0.1", broker_port=broker.port
        )
        config["cluster"] = {
            "secret": SECRET,
            "balancer_id": "only",
            "broker_url": broker.url,
            "retry_interval_s": 0.2,
        }
        balancer = start_server(tmp, config)
        try:
            balancer.wait_ready()
            eventually(
                lambda: httpx.get(broker.url + "/ready", timeout=10).status_code == 200,
                "the balancer to register with the broker",
            )
            yield Cluster(broker, balancer)
        finally:
            balancer.stop()
    finally:
        broker.stop()


@pytest.fixture
def cluster(running: Cluster) -> Iterator[Cluster]:
    """The module's cluster; prints the balancer's log tail after the test (pytest shows it when
    the test fails)."""
    yield running
    print(f"--- balancer log ---\n{running.balancer.logs()}")


@pytest.fixture(scope="module")
def pipecat() -> SimpleNamespace:
    """pipecat's modules, or a skip. Module-scoped and named before ``cluster`` by the test, so
    the skip comes before the cluster starts (in envs without the client)."""
    return pipecat_modules()


@pytest.fixture(scope="module")
def livekit() -> SimpleNamespace:
    """livekit's plugin and aiohttp, or a skip (before the cluster starts, as for ``pipecat``)."""
    return livekit_modules()


def test_pipecat_speaks_through_the_broker(pipecat: SimpleNamespace, cluster: Cluster) -> None:
    routed = cluster.routed()
    assert_pipecat_speaks(pipecat, cluster.broker.url.replace("http://", "ws://"), CLIENT_KEY, TEXT)
    assert cluster.routed() == routed + 1  # through the broker, not around it


def test_livekit_streams_through_the_broker(livekit: SimpleNamespace, cluster: Cluster) -> None:
    routed = cluster.routed()
    assert_livekit_speaks(livekit, cluster.broker.url + "/v1", CLIENT_KEY, TEXT)
    assert cluster.routed() == routed + 1  # through the broker, not around it
