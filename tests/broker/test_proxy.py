"""End to end: a real broker under Hypercorn, fake balancers (broker_fake_balancer), real clients.

The balancers here are the test stand-in, not xtts-balancer: it implements the broker contract
(signed registration and heartbeats, /workers/idle, proof of origin on the websocket) and answers
deterministically, so every routing and relay rule can be asserted exactly.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from broker_fake_balancer import FakeBalancer, audio_bytes
from broker_servers import CLIENT_KEY, SECRET, make_settings, serve_broker, write_tls_files
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from xtts_broker.settings import BrokerSettings
from xtts_core.cluster import verify_request
from xtts_core.protocol import AudioOutput

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@contextlib.asynccontextmanager
async def cluster(
    settings: BrokerSettings, *balancers: FakeBalancer, heartbeat_s: float | None = None
) -> AsyncIterator[str]:
    """A broker with ``balancers`` registered in order; yields the broker's URL."""
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(serve_broker(settings))
        for balancer in balancers:
            await stack.enter_async_context(balancer.running(url, heartbeat_s=heartbeat_s))
        yield url


async def get(url: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(url, **kwargs)


async def listing(broker: str) -> list[dict[str, Any]]:
    response = await get(
        broker + "/broker/balancers", headers={"authorization": f"Bearer {SECRET}"}
    )
    balancers: list[dict[str, Any]] = response.json()["balancers"]
    return balancers


def ws_url(broker: str, voice: str = "v", endpoint: str = "stream-input", query: str = "") -> str:
    url = broker.replace("http://", "ws://") + f"/v1/text-to-speech/{voice}/{endpoint}"
    return f"{url}?{query}" if query else url


@contextlib.asynccontextmanager
async def client(
    broker: str, *, key: str | None = CLIENT_KEY, **kwargs: str
) -> AsyncIterator[ClientConnection]:
    headers = {"xi-api-key": key} if key is not None else {}
    async with connect(ws_url(broker, **kwargs), additional_headers=headers) as ws:
        yield ws


async def drain(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every message until the broker closes (normally or not)."""
    messages = []
    with contextlib.suppress(ConnectionClosed):
        async for frame in ws:
            messages.append(json.loads(frame))
    return messages


async def speak(broker: str, *texts: str, **kwargs: Any) -> tuple[list[dict[str, Any]], int, str]:
    """BOS, ``texts``, EOS; returns (messages, close code, close reason)."""
    async with client(broker, **kwargs) as ws:
        with contextlib.suppress(ConnectionClosed):  # the broker may close early (auth, 1013)
            for text in (" ", *texts, ""):
                await ws.send(json.dumps({"text": text}))
        messages = await drain(ws)
    assert ws.close_code is not None
    return messages, ws.close_code, ws.close_reason or ""


def audio_of(messages: list[dict[str, Any]]) -> list[bytes]:
    return [base64.b64decode(m["audio"]) for m in messages if m.get("audio")]


async def test_stream_is_relayed_with_proof_and_session_id() -> None:
    b1 = FakeBalancer("b1", SECRET)
    async with cluster(make_settings(), b1) as broker:
        messages, code, _ = await speak(broker, "hello", "world", query="output_format=pcm_16000")
    assert audio_of(messages) == [audio_bytes("b1", "hello"), audio_bytes("b1", "world")]
    assert messages[-1]["isFinal"] is True
    assert code == 1000
    assert len(b1.session_ids) == 1 and len(b1.session_ids[0]) == 16
    assert b1.rejected_origins == []


async def test_voice_id_is_escaped_and_multi_stream_input_is_relayed() -> None:
    b1 = FakeBalancer("b1", SECRET)
    async with cluster(make_settings(), b1) as broker:
        messages, code, _ = await speak(
            broker, "x", voice="a%20b%3Fc", endpoint="multi-stream-input"
        )
    # The signature covers the decoded path, so it verified: the voice id arrived intact.
    assert audio_of(messages) == [audio_bytes("b1", "x")]
    assert code == 1000


async def test_the_fake_balancer_refuses_streams_without_proof_of_origin() -> None:
    b1 = FakeBalancer("b1", SECRET)
    async with b1.running():
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(f"http://127.0.0.1:{b1.port}")):
                pass
    assert refused.value.response.status_code == 403
    assert b1.rejected_origins == [b1.rejected_origins[0]]
    assert "missing proof of origin" in b1.rejected_origins[0]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("deep", "small"), ("wide", "large")],
)
async def test_strategies_pick_by_free_slots(strategy: str, expected: str) -> None:
    small, large = FakeBalancer("small", SECRET, slots=1), FakeBalancer("large", SECRET, slots=3)
    settings = make_settings(service={"strategy": strategy})
    async with cluster(settings, small, large) as broker:
        messages, _, _ = await speak(broker, "hi")
    assert audio_of(messages) == [audio_bytes(expected, "hi")]


async def test_random_strategy_only_picks_balancers_with_capacity() -> None:
    full, free = FakeBalancer("full", SECRET, slots=0), FakeBalancer("free", SECRET, slots=1)
    async with cluster(make_settings(service={"strategy": "random"}), full, free) as broker:
        for _ in range(4):
            messages, _, _ = await speak(broker, "hi")
            assert audio_of(messages) == [audio_bytes("free", "hi")]
    assert full.session_ids == []


@pytest.mark.parametrize(
    ("key", "first_message", "expected"),
    [
        (None, {"text": " "}, 1008),
        ("wrong", {"text": " "}, 1008),
        (None, {"text": " ", "xi_api_key": "wrong"}, 1008),
        (None, {"text": " ", "xi_api_key": CLIENT_KEY}, 1000),
        (None, {"text": " ", "xi-api-key": CLIENT_KEY}, 1000),
        (None, {"text": " ", "authorization": f"Bearer {CLIENT_KEY}"}, 1000),
    ],
)
async def test_client_auth(key: str | None, first_message: dict[str, str], expected: int) -> None:
    b1 = FakeBalancer("b1", SECRET)
    async with cluster(make_settings(), b1) as broker, client(broker, key=key) as ws:
        with contextlib.suppress(ConnectionClosed):  # a bad header key is refused at once
            await ws.send(json.dumps(first_message))
            await ws.send(json.dumps({"text": "hi"}))
            await ws.send(json.dumps({"text": ""}))
        messages = await drain(ws)
    assert ws.close_code == expected
    if expected == 1008:
        assert messages == [
            {"message": messages[0]["message"], "error": "invalid_api_key", "code": 1008}
        ]
        assert b1.session_ids == []  # rejected before any balancer was involved
    else:
        assert audio_of(messages) == [audio_bytes("b1", "hi")]


async def test_a_first_message_nested_too_deep_is_refused_not_a_crash() -> None:
    """Regression: looking for a key in such a message raised RecursionError (close 1011)."""
    b1 = FakeBalancer("b1", SECRET)
    async with cluster(make_settings(), b1) as broker, client(broker, key=None) as ws:
        await ws.send('{"text": " ", "x": ' + "[" * 20000 + "]" * 20000 + "}")
        messages = await drain(ws)
    assert ws.close_code == 1008
    assert [m["error"] for m in messages] == ["invalid_api_key"]


async def test_key_in_the_query_is_accepted() -> None:
    b1 = FakeBalancer("b1", SECRET)
    async with cluster(make_settings(), b1) as broker:
        _, code, _ = await speak(broker, "hi", key=None, query=f"xi_api_key={CLIENT_KEY}")
    assert code == 1000


async def test_no_capacity_anywhere_is_an_error_and_1013() -> None:
    full = FakeBalancer("full", SECRET, slots=0)
    async with cluster(make_settings(), full) as broker:
        messages, code, reason = await speak(broker, "hi")
    assert code == 1013
    assert messages == [{"message": messages[0]["message"], "error": "no_capacity", "code": 1013}]
    assert reason.startswith("no capacity")


async def test_failover_from_a_refusing_balancer_is_invisible() -> None:
    refuses = FakeBalancer("refuses", SECRET, slots=1, mode="refuse")
    works = FakeBalancer("works", SECRET, slots=4)
    async with cluster(make_settings(), refuses, works) as broker:  # deep tries "refuses" first
        messages, code, _ = await speak(broker, "one", "two")
        metrics = (await get(broker + "/metrics")).text
    assert [m.get("error") for m in messages] == [None, None, None]
    assert audio_of(messages) == [audio_bytes("works", "one"), audio_bytes("works", "two")]
    assert code == 1000
    assert len(refuses.session_ids) == 1
    assert 'xtts_broker_failovers_total{reason="close_1013"} 1.0' in metrics


async def test_failover_from_an_unreachable_balancer() -> None:
    gone = FakeBalancer("gone", SECRET, slots=1)
    works = FakeBalancer("works", SECRET, slots=4)
    async with serve_broker(make_settings()) as broker, works.running(broker):
        async with gone.running():
            (await gone.register(broker)).raise_for_status()
        # "gone" stopped serving; deep still prefers it (1 free slot) until it is tried.
        messages, code, _ = await speak(broker, "hi")
        balancers = await listing(broker)
    assert audio_of(messages) == [audio_bytes("works", "hi")]
    assert code == 1000
    health = {b["id"]: b["health"] for b in balancers}
    assert health == {"gone": "unhealthy", "works": "healthy"}


async def test_failure_before_audio_fails_over_and_after_audio_reaches_the_client() -> None:
    fails, works = (
        FakeBalancer("fails", SECRET, slots=1, mode="fail"),
        FakeBalancer("works", SECRET),
    )
    async with cluster(make_settings(), fails, works) as broker:  # deep tries "fails" first
        messages, code, _ = await speak(broker, "hi")
        balancers = await listing(broker)
        assert audio_of(messages) == [audio_bytes("works", "hi")]
        assert code == 1000
        assert [b["health"] for b in balancers] == ["unhealthy", "healthy"]
        # After audio has flowed, a failure is the client's to see.
        messages, code, reason = await speak(broker, "hi", "CLOSE 1011 worker died")
    assert audio_of(messages) == [audio_bytes("works", "hi")]
    assert (code, reason) == (1011, "worker died")


async def test_balancer_close_code_and_reason_reach_the_client() -> None:
    b1 = FakeBalancer("b1", SECRET)
    async with cluster(make_settings(), b1) as broker:
        _, code, reason = await speak(broker, "hi", "CLOSE 4001 custom reason")
    assert (code, reason) == (4001, "custom reason")


@contextlib.asynccontextmanager
async def raw_balancer(
    broker: str, closes: list[tuple[int | None, str | None]]
) -> AsyncIterator[None]:
    """A balancer on the ``websockets`` server, which (unlike Hypercorn) reports the close code
    its peer sent: it answers each message with audio and records how the broker closed."""

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        verify_request(SECRET, "GET", ws.request.path.split("?")[0], ws.request.headers)
        async for _ in ws:
            await ws.send(AudioOutput(audio="AAAA").to_json())
        closes.append((ws.close_code, ws.close_reason))

    async with serve(handler, "127.0.0.1", 0) as server:
        stand_in = FakeBalancer("raw", SECRET, slots=1)
        stand_in.port = server.sockets[0].getsockname()[1]
        (await stand_in.register(broker)).raise_for_status()
        yield


async def test_a_leaving_client_closes_its_balancer_stream_at_once() -> None:
    closes: list[tuple[int | None, str | None]] = []
    async with serve_broker(make_settings()) as broker, raw_balancer(broker, closes):
        async with client(broker) as ws:
            await ws.send(json.dumps({"text": " "}))
            await ws.send(json.dumps({"text": "hi"}))
            await ws.recv()
            await ws.close(4002, "client leaves")
        for _ in range(100):
            if closes:
                break
            await asyncio.sleep(0.01)
    # Hypercorn hides the client's 4002 (it reports 1006), so the broker says "going away".
    assert closes == [(1001, "client disconnected")]


async def test_concurrent_clients_never_overbook() -> None:
    b1, b2 = FakeBalancer("b1", SECRET, slots=1), FakeBalancer("b2", SECRET, slots=2)
    release = asyncio.Event()

    async def one() -> int:
        async with client(broker) as ws:
            await ws.send(json.dumps({"text": " "}))
            await ws.send(json.dumps({"text": "hi"}))
            with contextlib.suppress(ConnectionClosed):
                first = json.loads(await ws.recv())
                if first.get("audio"):
                    await release.wait()
                    await ws.send(json.dumps({"text": ""}))
            await drain(ws)
        assert ws.close_code is not None
        return ws.close_code

    async with cluster(make_settings(), b1, b2) as broker:
        tasks = [asyncio.create_task(one()) for _ in range(6)]
        for _ in range(200):
            if sum(t.done() for t in tasks) == 3:
                break
            await asyncio.sleep(0.01)
        release.set()
        codes = sorted(await asyncio.gather(*tasks))
    assert codes == [1000, 1000, 1000, 1013, 1013, 1013]
    assert (b1.peak, b2.peak) == (1, 2)
    # No stream was even attempted on a full balancer: every attempt was served.
    assert len(b1.session_ids) == b1.streams_served == 1
    assert len(b2.session_ids) == b2.streams_served == 2


async def test_stale_capacity_is_probed_concurrently_and_a_failed_probe_takes_a_balancer_out() -> (
    None
):
    slow, broken = FakeBalancer("slow", SECRET, slots=1), FakeBalancer("broken", SECRET, slots=1)
    settings = make_settings(cluster={"capacity_fresh_s": 0.05})
    async with cluster(settings, slow, broken) as broker:
        await asyncio.sleep(0.1)  # both idle counts are stale now
        slow.probe_delay_s = broken.probe_delay_s = 0.5
        broken.probe_status = 500
        loop = asyncio.get_running_loop()
        started = loop.time()
        messages, code, _ = await speak(broker, "hi")
        took = loop.time() - started
        balancers = await listing(broker)
    assert (slow.probes, broken.probes) == (1, 1)
    assert took < 0.9  # one probe time (0.5 s), not two in a row
    assert audio_of(messages) == [audio_bytes("slow", "hi")]
    assert code == 1000
    assert [(b["id"], b["health"]) for b in balancers] == [
        ("slow", "healthy"),
        ("broken", "unhealthy"),
    ]
    assert "probe of" in balancers[1]["down_reason"]


async def test_heartbeat_expiry_takes_a_balancer_out_and_a_heartbeat_brings_it_back() -> None:
    b1 = FakeBalancer("b1", SECRET)
    settings = make_settings(
        cluster={"heartbeat_interval_s": 0.1, "heartbeat_ttl_s": 0.3, "removal_grace_s": 30}
    )
    async with cluster(settings, b1) as broker:
        await asyncio.sleep(0.4)
        _, code, _ = await speak(broker, "hi")
        assert code == 1013
        assert (await get(broker + "/ready")).status_code == 503
        (await b1.heartbeat(broker)).raise_for_status()
        _, code, _ = await speak(broker, "hi")
        assert code == 1000
        assert (await get(broker + "/ready")).status_code == 200


async def test_reregistration_after_a_broker_restart_and_removal_after_grace() -> None:
    b1 = FakeBalancer("b1", SECRET)
    settings = make_settings(
        cluster={"heartbeat_interval_s": 0.1, "heartbeat_ttl_s": 0.2, "removal_grace_s": 0.3}
    )
    async with b1.running():
        async with serve_broker(settings) as broker:
            port = int(broker.rsplit(":", 1)[1])
            (await b1.register(broker)).raise_for_status()
        # A new broker on the same port knows nothing of b1 ...
        async with serve_broker(settings, port=port) as broker:
            _, code, _ = await speak(broker, "hi")
            assert code == 1013
            # ... until b1's next heartbeat gets 404 and b1 registers again.
            (await b1.heartbeat(broker)).raise_for_status()
            messages, code, _ = await speak(broker, "hi")
            assert (audio_of(messages), code) == ([audio_bytes("b1", "hi")], 1000)
            await asyncio.sleep(0.4)  # past the grace without heartbeats: removed
            assert await listing(broker) == []


async def test_shutdown_closes_open_streams_with_1001_after_the_grace() -> None:
    b1 = FakeBalancer("b1", SECRET)
    settings = make_settings(service={"graceful_timeout_s": 0.2})
    async with b1.running():
        async with serve_broker(settings) as broker:
            (await b1.register(broker)).raise_for_status()
            ws = await connect(ws_url(broker), additional_headers={"xi-api-key": CLIENT_KEY})
            await ws.send(json.dumps({"text": " "}))
            await ws.send(json.dumps({"text": "hi"}))
            await ws.recv()
        # serve_broker's exit ran the drain: the open stream was closed, both ways.
        await drain(ws)
        assert ws.close_code == 1001
        for _ in range(100):
            if b1.client_closes:
                break
            await asyncio.sleep(0.01)
        assert len(b1.client_closes) == 1  # the balancer's stream ended too
        assert b1.busy == 0


async def test_oversize_frame_closes_only_that_stream() -> None:
    b1 = FakeBalancer("b1", SECRET)
    settings = make_settings(service={"websocket_max_message_size": 4096})
    async with cluster(settings, b1) as broker:
        async with client(broker) as ws:
            await ws.send(json.dumps({"text": " "}))
            await ws.send(json.dumps({"text": "x" * 10_000}))
            await drain(ws)
        assert ws.close_code == 1009
        _, code, _ = await speak(broker, "hi")
        assert code == 1000


async def test_ready_health_and_metrics() -> None:
    async with serve_broker(make_settings()) as broker:
        assert (await get(broker + "/health")).json()["status"] == "ok"
        assert (await get(broker + "/ready")).status_code == 503
        b1 = FakeBalancer("b1", SECRET)
        async with b1.running(broker):
            assert (await get(broker + "/ready")).json()["healthy_balancers"] == 1
            await speak(broker, "hi")
            await speak(broker, "hi", key="bad")
            text = (await get(broker + "/metrics")).text
    assert 'xtts_broker_sessions_routed_total{balancer="b1"} 1.0' in text
    assert 'xtts_broker_rejected_streams_total{reason="auth"} 1.0' in text
    assert 'xtts_broker_balancers{health="healthy"} 1.0' in text
    assert "xtts_broker_routing_seconds_count 1.0" in text


# The SDK reads ConnectionClosed.code, which websockets >= 13.1 deprecates.
@pytest.mark.filterwarnings("ignore:ConnectionClosed.code is deprecated:DeprecationWarning")
async def test_the_official_elevenlabs_sdk_streams_through_the_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from elevenlabs.client import ElevenLabs  # elevenlabs==2.78.0, as the balancer tests pin

    tls = write_tls_files(tmp_path)
    # Served over TLS as in production: convert_realtime() always opens wss:// with websockets'
    # default TLS context, which (like the SDK's default httpx client, trust_env on, and the
    # fake balancer's registration client) takes its CA from SSL_CERT_FILE. No SDK internals.
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca))
    settings = make_settings(
        service={"tls_certfile": str(tls.certfile), "tls_keyfile": str(tls.keyfile)}
    )

    def pieces() -> Iterator[str]:
        yield "Hello from the SDK, "
        yield "through the broker."

    def run_sdk(broker: str) -> bytes:
        sdk = ElevenLabs(api_key=CLIENT_KEY, base_url=broker)
        stream = sdk.text_to_speech.convert_realtime(
            voice_id="v", text=pieces(), output_format="pcm_16000"
        )
        return b"".join(stream)

    b1 = FakeBalancer("b1", SECRET)
    async with cluster(settings, b1) as broker:
        assert broker.startswith("https://")
        audio = await asyncio.to_thread(run_sdk, broker)
    assert audio.startswith(b"b1:Hello")
    assert audio.replace(b"b1:", b"").decode() == "Hello from the SDK, through the broker. "
