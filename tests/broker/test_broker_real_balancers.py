"""The broker in front of two real balancers: registration, strategies, failover, restarts, SDK.

test_proxy.py proves every routing and relay rule against a deterministic stand-in; this module
proves the same contract holds with the real thing on 127.0.0.1: two ``python -m xtts_balancer
serve`` processes in broker mode (one worker each on the tiny random checkpoint, short
generations), registering with, heartbeating to and signing streams for a real broker.

Shared per module, because a balancer takes seconds to warm up:

- the broker runs in this process (``broker_servers.serve_broker``, i.e. ``run_broker`` with its
  drain) on an event loop of its own in a thread, so the tests stay synchronous and the broker can
  be stopped and started again on the same port; it serves https/wss with a throwaway CA, as in
  production and as the official SDK insists on, and ``SSL_CERT_FILE`` points the balancers'
  registration clients and the SDK at that CA;
- ``small`` has one slot and ``large`` two (``workers.slots_per_worker``), so the strategies have
  different real idle counts to choose between; ``queue.max_queue`` is 0, so a balancer without a
  free slot answers 1013 at once instead of queueing.

Tests may run in any order (pytest-randomly): each starts with :meth:`Cluster.ready`, which
waits until the broker runs the wanted strategy and knows both balancers healthy and idle.
Which balancer served a stream is read from the balancers themselves (``GET /workers/idle`` while
a stream holds its slot) or from the broker's per-balancer routing counter.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from broker_servers import CLIENT_KEY, SECRET, BrokerThread, eventually, write_tls_files
from websockets.sync.client import ClientConnection, connect

from xtts_broker.settings import Strategy
from xtts_core.cluster import sign_request

pytest.importorskip("xtts_balancer", reason="needs xtts-balancer (and torch) for real balancers")

# The helpers that start a real balancer live with the balancer tests (balancer_server.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "balancer"))
from balancer_server import (
    CLIP_VOICE,
    Reply,
    Server,
    base_config,
    converse,
    join_broker,
    start_server,
)

# One rerun: once in about ten CI runs on a loaded 2-core machine, the first wss handshake to the
# in-process broker read EOF before the HTTP status line (no broker log; not reproduced in 7
# local runs at load 6). Tracked as a known flake; a second failure still fails the test.
pytestmark = [pytest.mark.timeout(180), pytest.mark.flaky(reruns=1)]

SMALL, LARGE = "small", "large"
SLOTS = {SMALL: 1, LARGE: 2}
HEARTBEAT_S = 1.0
TTL_S = 2.5
BOS = {"text": " "}
STREAM_PATH = f"/v1/text-to-speech/{CLIP_VOICE}/stream-input"


@dataclass
class Cluster:
    """The broker, the balancers and what a client needs to reach them."""

    broker: BrokerThread
    balancers: dict[str, Server]
    model_dir: Path
    voices: Path
    tmp: Path
    client_tls: ssl.SSLContext
    http: httpx.Client
    """For the broker's and balancers' HTTP endpoints, without keep-alive: the broker (Hypercorn)
    waits up to asyncio's 30 s SSL shutdown timeout for an idle TLS client that never reads
    again, which would stall every broker restart."""

    # --- processes ----------------------------------------------------------------------------

    def start_balancer(self, name: str) -> Server:
        """A balancer in broker mode; returns at once (it registers when its worker is warm)."""
        config = base_config(self.model_dir, self.voices)
        join_broker(config, name, self.broker.url, self.broker.port, SECRET)
        config["workers"]["slots_per_worker"] = SLOTS[name]
        # An open socket holds its slot (hold() below), and no balancer queues.
        config["queue"] = {"max_queue": 0, "queue_timeout_s": 1.0, "slot_lease": "session"}
        directory = self.tmp / f"{name}-{secrets.token_hex(4)}"
        directory.mkdir()
        self.balancers[name] = start_server(directory, config)
        return self.balancers[name]

    def kill_balancer(self, name: str) -> None:
        """SIGKILL the balancer and its workers at once, as when its host dies."""
        server = self.balancers[name]
        worker_pids = [worker["pid"] for worker in server.workers()]
        for pid in [server.process.pid, *worker_pids]:
            os.kill(pid, signal.SIGKILL)
        server.process.wait(10)

    def stop_balancers(self) -> None:
        """SIGTERM every balancer first, then wait: their graceful shutdowns overlap."""
        for server in self.balancers.values():
            server.process.send_signal(signal.SIGTERM)
        for server in self.balancers.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.process.wait(30)
            server.stop(signal.SIGKILL)  # only if it did not exit in time

    def restart_broker(self, strategy: Strategy) -> None:
        self.broker.stop()
        self.broker.start(strategy)

    # --- observations -------------------------------------------------------------------------

    def listing(self) -> dict[str, dict[str, Any]]:
        """The broker's registry (``GET /broker/balancers``) by balancer id, in registration
        order."""
        response = self.http.get(
            self.broker.url + "/broker/balancers", headers={"authorization": f"Bearer {SECRET}"}
        )
        response.raise_for_status()
        return {entry["id"]: entry for entry in response.json()["balancers"]}

    def real_idle(self) -> dict[str, int]:
        """Free slots as each balancer itself reports them."""
        return {
            name: self.http.get(server.http_url + "/workers/idle").json()["idle_workers"]
            for name, server in self.balancers.items()
        }

    def routed(self) -> dict[str, float]:
        """The broker's ``xtts_broker_sessions_routed_total`` per balancer."""
        text = self.http.get(self.broker.url + "/metrics").text
        found = re.findall(
            r'^xtts_broker_sessions_routed_total\{balancer="(\w+)"\} (\S+)$', text, re.M
        )
        return {name: float(found_value) for name, found_value in found}

    def failovers(self, reason: str) -> float:
        text = self.http.get(self.broker.url + "/metrics").text
        match = re.search(
            rf'^xtts_broker_failovers_total\{{reason="{reason}"\}} (\S+)$', text, re.M
        )
        return float(match.group(1)) if match else 0.0

    def log(self, name: str) -> str:
        return self.balancers[name].log.read_text(errors="replace")

    def in_sync(self) -> bool:
        """The broker's view equals the balancers' own: both healthy, same idle counts, and no
        reservation that a heartbeat has not accounted for yet."""
        listing, idle = self.listing(), self.real_idle()
        return set(listing) == set(idle) and all(
            entry["health"] == "healthy"
            and entry["url"] == self.balancers[name].http_url
            and entry["idle"] == idle[name]
            and entry["reserved"] == 0
            for name, entry in listing.items()
        )

    # --- set-up every test starts from --------------------------------------------------------

    def ready(self, strategy: Strategy = "deep", timeout: float = 30.0) -> None:
        """The broker runs ``strategy`` and knows both balancers healthy with every slot free."""
        if self.broker.strategy != strategy:
            self.restart_broker(strategy)
        eventually(
            lambda: self.in_sync() and self.real_idle() == SLOTS,
            "both balancers registered, healthy and idle",
            timeout,
        )

    # --- clients ------------------------------------------------------------------------------

    def client(self, voice: str = CLIP_VOICE) -> ClientConnection:
        url = self.broker.url.replace("https://", "wss://")
        return connect(
            f"{url}/v1/text-to-speech/{voice}/stream-input?output_format=pcm_16000",
            additional_headers={"xi-api-key": CLIENT_KEY},
            ssl=self.client_tls,
            open_timeout=10,
        )

    def speak(self, text: str, voice: str = CLIP_VOICE) -> Reply:
        """One whole stream through the broker: BOS, ``text``, EOS, then read until closed."""
        with self.client(voice) as ws:
            return converse(ws, BOS, {"text": text}, {"text": ""})

    @contextlib.contextmanager
    def hold(self) -> Iterator[str]:
        """Open a stream through the broker and keep it open (it holds a slot as long as its
        socket is open); yields the balancer that took it, once the broker's view has caught up
        (so the next choice is made on real, heartbeat-reported capacity)."""
        before = self.real_idle()
        with self.client() as ws:
            ws.send(json.dumps(BOS))
            eventually(lambda: self.real_idle() != before, "a balancer to take the stream")
            after = self.real_idle()
            (taken,) = [name for name in before if after[name] == before[name] - 1]
            eventually(self.in_sync, "the broker to hear of the taken slot")
            yield taken


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from xtts_core.random_checkpoint import write_random_checkpoint

    tmp = tmp_path_factory.mktemp("real-balancers")
    model_dir = write_random_checkpoint(tmp / "model", "tiny", seed=0, speakers=(CLIP_VOICE,))
    voices = tmp / "voices"  # no clips: the checkpoint's named speaker is the voice
    voices.mkdir()
    tls = write_tls_files(tmp)
    broker = BrokerThread(
        tls,
        cluster={
            "heartbeat_interval_s": HEARTBEAT_S,
            "heartbeat_ttl_s": TTL_S,
            "removal_grace_s": 60.0,
        },
    )
    with pytest.MonkeyPatch.context() as env:
        # The balancers (started below, inheriting the environment) register over https, and
        # the official SDK opens wss://: both trust the throwaway CA through SSL_CERT_FILE.
        env.setenv("SSL_CERT_FILE", str(tls.ca))
        broker.start("deep")
        client_tls = ssl.create_default_context(cafile=tls.ca)
        http = httpx.Client(
            verify=client_tls, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
        )
        cluster = Cluster(broker, {}, model_dir, voices, tmp, client_tls, http)
        try:
            for name in SLOTS:
                cluster.start_balancer(name)
            for server in cluster.balancers.values():
                server.wait_ready()
            yield cluster
        finally:
            cluster.stop_balancers()
            broker.stop()
            cluster.http.close()


@pytest.fixture(autouse=True)
def balancer_logs(cluster: Cluster) -> Iterator[None]:
    """Print the balancers' log tails after each test: pytest shows them when a test fails."""
    yield
    for name, server in cluster.balancers.items():
        print(f"--- balancer {name} log ---\n{server.logs()}")


def assert_spoken(reply: Reply) -> None:
    """A clean stream: 16-bit PCM audio, no error, ``isFinal`` last, close 1000."""
    assert reply.error is None, reply
    assert reply.audio_bytes and len(reply.audio_bytes) % 2 == 0, reply
    assert reply.messages[-1].get("isFinal") is True, reply
    assert reply.close_code == 1000, reply


def test_both_balancers_register_and_a_sentence_streams_through_the_broker(
    cluster: Cluster,
) -> None:
    cluster.ready()
    listing = cluster.listing()
    assert {name: entry["capacity"] for name, entry in listing.items()} == SLOTS
    assert {entry["instances"] for entry in listing.values()} == {1}
    ready = cluster.http.get(cluster.broker.url + "/ready")
    assert ready.json()["healthy_balancers"] == 2

    assert_spoken(cluster.speak("Hello there, through the broker."))


@pytest.mark.parametrize("strategy", ["deep", "wide"])
def test_the_strategy_picks_by_real_idle_capacity(cluster: Cluster, strategy: Strategy) -> None:
    cluster.ready(strategy)
    first, last = list(cluster.listing())  # registration order
    # small has 1 free slot, large 2. deep: fewest free > 0, ties to the earliest registered;
    # wide: most free, ties (1 and 1 after the first stream) to the latest registered.
    expected = {"deep": [SMALL, LARGE, LARGE], "wide": [LARGE, last, first]}[strategy]
    with contextlib.ExitStack() as streams:
        taken = [streams.enter_context(cluster.hold()) for _ in range(3)]
        refused = cluster.speak("No room left.")
    assert taken == expected
    assert refused.close_code == 1013, refused
    assert refused.error is not None and refused.error["error"] == "no_capacity", refused


def test_failover_from_a_full_balancer_before_audio_is_invisible(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    cluster.ready("deep")  # deep prefers small (1 free) over large (2 free)
    caplog.set_level(logging.INFO, logger="xtts_broker")
    small = cluster.balancers[SMALL]
    # Take small's only slot directly (a stream signed as the broker would), right after a
    # heartbeat, so that the broker still counts the slot free when the client arrives.
    eventually(lambda: cluster.listing()[SMALL]["last_seen_s"] < 0.2, "a heartbeat of small")
    signed = sign_request(SECRET, "GET", STREAM_PATH, session_id=secrets.token_hex(8))
    routed = cluster.routed()
    failovers = cluster.failovers("close_1013")
    with small.connect(key=None, extra_headers=signed) as direct:
        direct.send(json.dumps(BOS))
        eventually(lambda: cluster.real_idle()[SMALL] == 0, "the direct stream to take the slot")
        assert cluster.listing()[SMALL]["free"] == 1, "a heartbeat came too early to test this"
        reply = cluster.speak("Hello there.")
    assert_spoken(reply)  # no error, no trace of the refusal
    after = cluster.routed()
    assert after[SMALL] - routed.get(SMALL, 0) == 1  # tried first: it answered 1013
    assert after[LARGE] - routed.get(LARGE, 0) == 1  # and the stream went on there
    assert cluster.failovers("close_1013") == failovers + 1
    # One session id follows the stream: the balancer logged its refusal under the broker's id.
    (session_id,) = [
        record.args[0]
        for record in caplog.records
        if isinstance(record.args, tuple) and "before any audio" in record.getMessage()
    ]
    assert f"session={session_id} " in cluster.log(SMALL)
    assert cluster.listing()[SMALL]["health"] == "healthy"  # busy is not broken


def test_a_close_code_from_the_balancer_reaches_the_client(cluster: Cluster) -> None:
    cluster.ready()
    reply = cluster.speak("Hello there.", voice="nobody")
    assert reply.close_code == 1008, reply
    assert reply.error is not None and reply.error["error"] == "voice_not_found", reply
    assert "'nobody'" in reply.error["message"]
    assert reply.audio == []


def test_after_a_broker_restart_balancers_register_again_and_traffic_resumes(
    cluster: Cluster,
) -> None:
    cluster.ready()
    forgotten = {name: cluster.log(name).count("the broker forgot") for name in SLOTS}
    cluster.restart_broker("deep")
    cluster.ready()
    # Each balancer learnt of the restart from a 404 to its heartbeat and registered again.
    assert {name: cluster.log(name).count("the broker forgot") for name in SLOTS} == {
        name: count + 1 for name, count in forgotten.items()
    }
    assert_spoken(cluster.speak("Back again."))


def test_a_killed_balancer_leaves_rotation_within_the_ttl_and_returns_when_restarted(
    cluster: Cluster,
) -> None:
    cluster.ready("deep")  # deep prefers small
    routed = cluster.routed()
    killed = time.monotonic()
    cluster.kill_balancer(SMALL)
    eventually(lambda: cluster.listing()[SMALL]["health"] == "unhealthy", "small to expire")
    out_after = time.monotonic() - killed
    assert TTL_S - HEARTBEAT_S - 0.2 <= out_after <= TTL_S + 1.0  # + polling under load
    assert cluster.listing()[SMALL]["down_reason"] is None  # the TTL took it out, not a failure

    assert_spoken(cluster.speak("Only one left."))
    after = cluster.routed()
    assert after.get(SMALL, 0) == routed.get(SMALL, 0)
    assert after[LARGE] == routed.get(LARGE, 0) + 1

    cluster.start_balancer(SMALL).wait_ready()
    # Registered again, at its new address, as soon as its worker was warm.
    cluster.ready("deep", timeout=HEARTBEAT_S + 1.0)
    assert_spoken(cluster.speak("I am back."))
    assert cluster.routed()[SMALL] == routed.get(SMALL, 0) + 1


# The SDK reads ConnectionClosed.code, which websockets >= 13.1 deprecates.
@pytest.mark.filterwarnings("ignore:ConnectionClosed.code is deprecated:DeprecationWarning")
def test_the_official_sdk_streams_through_the_broker_to_a_real_balancer(cluster: Cluster) -> None:
    from elevenlabs.client import ElevenLabs  # elevenlabs==2.78.0, as the hatch-test env pins

    cluster.ready()
    routed = sum(cluster.routed().values())
    # convert_realtime() always opens wss:// and trusts SSL_CERT_FILE (set by the fixture).
    sdk = ElevenLabs(api_key=CLIENT_KEY, base_url=cluster.broker.url)
    text = iter(["Hello from the SDK, ", "through the broker."])
    stream = sdk.text_to_speech.convert_realtime(
        voice_id=CLIP_VOICE, text=text, output_format="pcm_16000"
    )
    audio = b"".join(stream)
    assert audio and len(audio) % 2 == 0
    assert sum(cluster.routed().values()) == routed + 1
