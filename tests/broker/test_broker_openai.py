"""OpenAI's speech API through the broker (xtts_broker.openai_proxy) with the official ``openai``
SDK, unmodified but its ``base_url``: a real broker (plain http, in a thread) in front of a real
balancer in broker mode on the tone backend (one worker, two slots, no queue, so a third
request finds it busy at once).
"""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from broker_servers import CLIENT_KEY, SECRET, BrokerThread, eventually

pytest.importorskip("xtts_balancer", reason="needs xtts-balancer (and torch) for a real balancer")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "balancer"))
from balancer_server import Server, join_broker, start_server
from openai_audio import CONTENT_TYPES, FORMATS, LONG_TEXT, TEXT, check_audio, tone_config

pytestmark = pytest.mark.timeout(120)

BALANCER = "tone"


def _metric(url: str, name: str, labels: str = "") -> float:
    text = httpx.get(url + "/metrics").text
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def _healthy(broker: str, free: int = 0) -> bool:
    """The balancer is healthy at the broker, with at least ``free`` slots it knows free."""
    listing = httpx.get(broker + "/broker/balancers", headers={"authorization": f"Bearer {SECRET}"})
    return any(
        entry["id"] == BALANCER and entry["health"] == "healthy" and entry["free"] >= free
        for entry in listing.json()["balancers"]
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Server]]:
    """The broker's URL and the balancer registered with it, healthy and idle."""
    tmp = tmp_path_factory.mktemp("broker-openai")
    thread = BrokerThread(cluster={"heartbeat_interval_s": 1.0, "heartbeat_ttl_s": 2.5})
    thread.start("wide")
    voices = tmp / "voices"
    voices.mkdir()
    config = tone_config(voices, slots=2)
    config["queue"]["max_queue"] = 0
    join_broker(config, BALANCER, thread.url, thread.port, SECRET)
    directory = tmp / "balancer"
    directory.mkdir()
    server = start_server(directory, config)
    try:
        server.wait_ready()
        eventually(lambda: _healthy(thread.url), "the balancer to register")
        yield thread.url, server
    finally:
        server.stop()
        thread.stop()
        print(f"--- balancer log ---\n{server.logs()}")


@pytest.fixture
def client(cluster: tuple[str, Server]) -> Iterator[openai.OpenAI]:
    broker, _ = cluster
    # A request just ended may still count at the broker until the next heartbeat.
    eventually(lambda: _healthy(broker, free=2), "both slots free at the broker")
    with openai.OpenAI(
        api_key=CLIENT_KEY, base_url=f"{broker}/v1", max_retries=0, timeout=60
    ) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def text_seconds(cluster: tuple[str, Server]) -> float:
    broker, _ = cluster
    with openai.OpenAI(api_key=CLIENT_KEY, base_url=f"{broker}/v1") as sdk:
        audio = sdk.audio.speech.create(
            model="tts-1", voice="alloy", input=TEXT, response_format="pcm"
        ).content
    return len(audio) / 48000


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_through_the_broker_decodes(
    client: openai.OpenAI, cluster: tuple[str, Server], text_seconds: float, fmt: str
) -> None:
    broker, _ = cluster
    routed = _metric(broker, "xtts_broker_sessions_routed_total", f'{{balancer="{BALANCER}"}}')
    whole = client.audio.speech.create(
        model="tts-1",
        voice="alloy",
        input=TEXT,
        response_format=fmt,  # type: ignore[arg-type]
    )
    check_audio(whole.content, fmt, text_seconds)
    with client.audio.speech.with_streaming_response.create(
        model="tts-1",
        voice="echo",
        input=TEXT,
        response_format=fmt,  # type: ignore[arg-type]
    ) as response:
        assert response.headers["content-type"].startswith(CONTENT_TYPES[fmt])
        check_audio(b"".join(response.iter_bytes()), fmt, text_seconds)
    after = _metric(broker, "xtts_broker_sessions_routed_total", f'{{balancer="{BALANCER}"}}')
    assert after == routed + 2


def test_sse_and_first_bytes_before_the_end_through_the_broker(
    client: openai.OpenAI, cluster: tuple[str, Server]
) -> None:
    _, balancer = cluster
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=LONG_TEXT, response_format="pcm", stream_format="sse"
    ) as response:
        lines = response.iter_lines()
        first = json.loads(next(line for line in lines if line).removeprefix("data: "))
        assert first["type"] == "speech.audio.delta"
        # The balancer is still making this request's audio: one of its two slots is held.
        assert balancer.get("/workers/idle").json()["idle_workers"] == 1
        events = [json.loads(line.removeprefix("data: ")) for line in lines if line]
    audio = base64.b64decode(first["audio"]) + b"".join(
        base64.b64decode(event["audio"]) for event in events[:-1]
    )
    assert len(audio) / 48000 > 5.0
    assert events[-1]["type"] == "speech.audio.done"


def test_the_brokers_own_refusals_are_openai_errors(
    client: openai.OpenAI, cluster: tuple[str, Server]
) -> None:
    broker, _ = cluster
    wrong = openai.OpenAI(api_key="wrong-key", base_url=f"{broker}/v1", max_retries=0)
    with wrong, pytest.raises(openai.AuthenticationError) as bad_key:
        wrong.audio.speech.create(model="tts-1", voice="alloy", input="Hi.")
    assert (bad_key.value.status_code, bad_key.value.code) == (401, "invalid_api_key")
    assert bad_key.value.type == "invalid_request_error"
    streams = [
        client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=LONG_TEXT, response_format="pcm"
        )
        for _ in range(2)
    ]
    with streams[0] as first, streams[1] as second:  # both slots
        with pytest.raises(openai.RateLimitError) as busy:
            client.audio.speech.create(model="tts-1", voice="alloy", input="Hi.")
        first.close()
        second.close()
    assert busy.value.code == "no_capacity"
    assert isinstance(busy.value.body, dict) and busy.value.body["type"] == "rate_limit_error"


def test_the_balancers_refusals_and_listing_are_relayed(
    client: openai.OpenAI, cluster: tuple[str, Server]
) -> None:
    with pytest.raises(openai.BadRequestError) as unknown:
        client.audio.speech.create(model="tts-1", voice="Nobody", input="Hi.")
    assert (unknown.value.param, unknown.value.code) == ("voice", "voice_not_found")
    listing = client.get("/audio/models", cast_to=httpx.Response).json()
    assert listing["object"] == "list" and listing["data"][0]["id"] == "xtts_v2"
