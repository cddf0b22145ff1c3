"""The balancer's HTTP API through the broker (xtts_broker.http_proxy).

Two set-ups:

- a real broker (plain http, in a thread) in front of a real balancer in broker mode (tiny
  checkpoint, one worker), for the official SDK (elevenlabs 2.78.0) unmodified but for the base
  URL, the broker's own refusals, and failover from a registered balancer that cannot be
  reached;
- a broker and a scripted stand-in balancer on the test's event loop, for what needs control
  over the balancer's timing: an answer relayed chunk by chunk, a client that leaves, a busy
  balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from broker_servers import (
    CLIENT_KEY,
    SECRET,
    BrokerThread,
    eventually,
    make_settings,
    serve_app,
    serve_broker,
)
from elevenlabs.client import ElevenLabs
from elevenlabs.core.api_error import ApiError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from xtts_core.cluster import (
    DEREGISTER_PATH,
    REGISTER_PATH,
    BalancerDeregistration,
    BalancerRegistration,
    sign_request,
    verify_request,
)

pytest.importorskip("xtts_balancer", reason="needs xtts-balancer (and torch) for a real balancer")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "balancer"))
from balancer_server import CLIP_VOICE, Server, base_config, start_server

pytestmark = pytest.mark.timeout(120)

REAL = "real"
HEADERS = {"xi-api-key": CLIENT_KEY}


def _register(broker: str, registration: BalancerRegistration) -> httpx.Response:
    body = registration.model_dump_json().encode()
    return httpx.post(
        broker + REGISTER_PATH,
        content=body,
        headers=sign_request(
            SECRET, "POST", REGISTER_PATH, session_id=secrets.token_hex(8), body=body
        ),
    )


def _deregister(broker: str, balancer_id: str) -> httpx.Response:
    body = BalancerDeregistration(id=balancer_id).model_dump_json().encode()
    return httpx.post(
        broker + DEREGISTER_PATH,
        content=body,
        headers=sign_request(
            SECRET, "POST", DEREGISTER_PATH, session_id=secrets.token_hex(8), body=body
        ),
    )


def _bearer() -> dict[str, str]:
    return {"authorization": f"Bearer {SECRET}"}


def _listing(broker: str) -> dict[str, dict[str, object]]:
    response = httpx.get(broker + "/broker/balancers", headers=_bearer())
    return {entry["id"]: entry for entry in response.json()["balancers"]}


def _metric(broker: str, name: str, label: str) -> float:
    text = httpx.get(broker + "/metrics").text
    match = re.search(rf"^{name}\{{{label}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


# --- a real balancer behind a real broker ---------------------------------------------------------


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The broker's URL, with the real balancer registered, healthy and idle."""
    from xtts_core.random_checkpoint import write_random_checkpoint

    tmp = tmp_path_factory.mktemp("broker-http")
    model_dir = write_random_checkpoint(tmp / "model", "tiny", seed=0, speakers=(CLIP_VOICE,))
    voices = tmp / "voices"  # no clips: the checkpoint's named speaker is the voice
    voices.mkdir()
    thread = BrokerThread(cluster={"heartbeat_interval_s": 1.0, "heartbeat_ttl_s": 2.5})
    thread.start("wide")  # "most idle first": a registered ghost with more slots is tried first
    config = base_config(model_dir, voices)
    config["service"].update(
        standalone_mode=False, broker_host="127.0.0.1", broker_port=thread.port
    )
    config["cluster"] = {
        "secret": SECRET,
        "balancer_id": REAL,
        "broker_url": thread.url,
        "retry_interval_s": 0.2,
    }
    config["workers"]["slots_per_worker"] = 2
    directory = tmp / "balancer"
    directory.mkdir()
    server: Server = start_server(directory, config)
    try:
        server.wait_ready()
        eventually(
            lambda: _listing(thread.url).get(REAL, {}).get("health") == "healthy",
            "the balancer to register",
        )
        yield thread.url
    finally:
        server.stop()
        thread.stop()
        print(f"--- balancer log ---\n{server.logs()}")


@pytest.fixture
def client(broker: str) -> Iterator[ElevenLabs]:
    with httpx.Client(timeout=60) as http:
        yield ElevenLabs(api_key=CLIENT_KEY, base_url=broker, httpx_client=http)


def test_sdk_speech_through_the_broker(client: ElevenLabs, broker: str) -> None:
    before = _metric(broker, "xtts_broker_sessions_routed_total", f'balancer="{REAL}"')
    pcm = b"".join(
        client.text_to_speech.convert(
            CLIP_VOICE, text="Hello through the broker.", output_format="pcm_16000"
        )
    )
    assert len(pcm) > 0 and len(pcm) % 2 == 0
    streamed = b"".join(
        client.text_to_speech.stream(CLIP_VOICE, text="Streaming now.", output_format="pcm_16000")
    )
    assert len(streamed) > 0 and len(streamed) % 2 == 0
    timed = client.text_to_speech.convert_with_timestamps(
        CLIP_VOICE, text="Timed words.", output_format="pcm_16000"
    )
    assert timed.alignment is not None
    assert "".join(timed.alignment.characters) == "Timed words."
    after = _metric(broker, "xtts_broker_sessions_routed_total", f'balancer="{REAL}"')
    assert after == before + 3


def test_sdk_listings_through_the_broker(client: ElevenLabs) -> None:
    assert CLIP_VOICE in {voice.voice_id for voice in client.voices.get_all().voices}
    assert client.voices.get(CLIP_VOICE).voice_id == CLIP_VOICE
    models = [model.model_id for model in client.models.list()]
    assert models[0] == "xtts_v2" and "eleven_turbo_v2_5" in models
    with pytest.raises(ApiError) as unknown:
        client.voices.get("no-such-voice")
    assert unknown.value.status_code == 404  # the balancer's answer, relayed


def test_sdk_search_settings_and_account_through_the_broker(
    client: ElevenLabs, broker: str
) -> None:
    found = client.voices.search(search=CLIP_VOICE.upper(), page_size=1)
    assert [voice.voice_id for voice in found.voices] == [CLIP_VOICE]
    assert found.total_count == 1 and not found.has_more  # the query reached the balancer
    assert client.voices.search(search="no voice is called this").voices == []
    default = client.voices.settings.get_default()
    assert default.stability == 0.5 and client.voices.settings.get(CLIP_VOICE) == default
    with pytest.raises(ApiError) as unknown:
        client.voices.settings.get("no-such-voice")
    assert unknown.value.status_code == 404
    assert client.user.get().subscription.tier == "self_hosted"
    subscription = client.user.subscription.get()
    assert subscription.status == "active" and subscription.character_limit == 2**31 - 1
    for path in ("/v2/voices", "/v1/user", f"/v1/voices/{CLIP_VOICE}/settings"):
        assert httpx.get(broker + path).status_code == 401  # refused at the broker


def test_unknown_voice_answer_is_relayed(broker: str) -> None:
    response = httpx.post(
        broker + "/v1/text-to-speech/no-such-voice", json={"text": "Hi."}, headers=HEADERS
    )
    assert response.status_code == 404
    assert response.json()["detail"]["status"] == "voice_not_found"


def test_a_bad_key_is_refused_at_the_broker(broker: str) -> None:
    routed = _metric(broker, "xtts_broker_sessions_routed_total", f'balancer="{REAL}"')
    with httpx.Client(timeout=10) as http:
        sdk = ElevenLabs(api_key="not-a-key", base_url=broker, httpx_client=http)
        with pytest.raises(ApiError) as refused:
            b"".join(sdk.text_to_speech.convert(CLIP_VOICE, text="Hi."))
        assert refused.value.status_code == 401
        keyless = http.get(broker + "/v1/voices")
    assert keyless.status_code == 401
    assert keyless.json()["detail"]["status"] == "invalid_api_key"
    assert _metric(broker, "xtts_broker_sessions_routed_total", f'balancer="{REAL}"') == routed


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        (HEADERS, {"xi_api_key": "wrong"}, 200),  # a header before the query
        (
            None,
            {"xi_api_key": CLIENT_KEY, "authorization": "Bearer wrong"},
            200,
        ),  # xi_api_key first
        ({"xi-api-key": "wrong"}, {"xi_api_key": CLIENT_KEY}, 401),  # the first key found decides
    ],
)
def test_key_precedence_is_the_protocols(
    broker: str, headers: dict[str, str] | None, query: dict[str, str], status: int
) -> None:
    response = httpx.get(broker + "/v1/models", headers=headers, params=query, timeout=10)
    assert response.status_code == status


def test_failover_when_the_chosen_balancer_is_unreachable(client: ElevenLabs, broker: str) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    ghost = BalancerRegistration(
        id="ghost", host="127.0.0.1", port=port, capacity=8, idle=8, version="test"
    )
    failovers = _metric(broker, "xtts_broker_failovers_total", 'reason="connect"')
    assert _register(broker, ghost).status_code == 200
    try:
        pcm = b"".join(
            client.text_to_speech.convert(CLIP_VOICE, text="Still here.", output_format="pcm_16000")
        )
        assert len(pcm) > 0
        assert _metric(broker, "xtts_broker_failovers_total", 'reason="connect"') == failovers + 1
        listing = _listing(broker)
        assert listing["ghost"]["health"] != "healthy"
        assert listing["ghost"]["reserved"] == 0
    finally:
        _deregister(broker, "ghost")


# --- a scripted balancer on the test's loop -------------------------------------------------------


class ScriptedBalancer:
    """Answers ``/stream`` with ``first``, then waits for :attr:`gate` before ``second``; or 429
    when :attr:`busy`. Records the paths, queries and session ids the broker signed."""

    def __init__(self, balancer_id: str) -> None:
        self.id = balancer_id
        self.busy = False
        self.gate = asyncio.Event()
        self.left = asyncio.Event()
        self.seen: list[tuple[str, str, str]] = []
        self.app = Starlette(
            routes=[
                Route("/workers/idle", self._idle, methods=["GET"]),
                Route("/v1/text-to-speech/{voice_id}/stream", self._stream, methods=["POST"]),
            ]
        )

    async def _idle(self, request: Request) -> Response:
        return JSONResponse({"idle_workers": 0 if self.busy else 1})

    async def _stream(self, request: Request) -> Response:
        session = verify_request(SECRET, "POST", request.url.path, request.headers)
        self.seen.append((request.path_params["voice_id"], request.url.query, session))
        if self.busy:
            return JSONResponse({"detail": {"status": "system_busy", "message": "busy"}}, 429)
        assert (await request.json()) == {"text": "Hi."}

        async def body() -> AsyncIterator[bytes]:
            try:
                yield b"first"
                await self.gate.wait()
                yield b"second"
            finally:
                self.left.set()

        return StreamingResponse(body(), media_type="audio/mpeg")

    @contextlib.asynccontextmanager
    async def registered(self, broker: str) -> AsyncIterator[None]:
        async with serve_app(self.app) as port:
            registration = BalancerRegistration(id=self.id, host="127.0.0.1", port=port)
            body = registration.model_dump_json().encode()
            async with httpx.AsyncClient() as http:
                signed = sign_request(
                    SECRET, "POST", REGISTER_PATH, session_id=secrets.token_hex(8), body=body
                )
                reply = await http.post(broker + REGISTER_PATH, content=body, headers=signed)
            assert reply.status_code == 200
            yield


@pytest.mark.anyio
async def test_streamed_answer_arrives_chunk_by_chunk_and_a_leaving_client_frees_it() -> None:
    scripted = ScriptedBalancer("scripted")
    async with (
        serve_broker(make_settings()) as broker,
        scripted.registered(broker),
        httpx.AsyncClient(timeout=10) as http,
    ):
        url = broker + "/v1/text-to-speech/a%20voice/stream?output_format=mp3_44100_128"
        async with http.stream("POST", url, json={"text": "Hi."}, headers=HEADERS) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "audio/mpeg"
            chunks = response.aiter_raw()
            # The balancer is still holding its second chunk: the first came through alone.
            assert await asyncio.wait_for(anext(chunks), 5) == b"first"
            scripted.gate.set()
            assert b"".join([chunk async for chunk in chunks]) == b"second"
        ((voice, query, session),) = scripted.seen
        assert (voice, query) == ("a voice", "output_format=mp3_44100_128")
        assert re.fullmatch(r"[0-9a-f]{16}", session)

        scripted.gate.clear()
        scripted.left.clear()
        async with http.stream("POST", url, json={"text": "Hi."}, headers=HEADERS) as response:
            assert await asyncio.wait_for(anext(response.aiter_raw()), 5) == b"first"
        # The client left mid-answer: the balancer's answer is abandoned and the slot released.
        await asyncio.wait_for(scripted.left.wait(), 5)
        reserved = (await http.get(broker + "/broker/balancers", headers=_bearer())).json()
        assert [entry["reserved"] for entry in reserved["balancers"]] == [0]


@pytest.mark.anyio
async def test_a_busy_balancer_is_skipped_and_none_left_means_429() -> None:
    busy, free = ScriptedBalancer("busy"), ScriptedBalancer("free")
    busy.busy = True
    free.gate.set()
    # "deep" with equal capacities takes the earliest registered: the busy one first.
    async with (
        serve_broker(make_settings(service={"strategy": "deep"})) as broker,
        busy.registered(broker),
        free.registered(broker),
        httpx.AsyncClient(timeout=10) as http,
    ):
        url = broker + "/v1/text-to-speech/v/stream"
        response = await http.post(url, json={"text": "Hi."}, headers=HEADERS)
        assert (response.status_code, response.content) == (200, b"firstsecond")
        assert len(busy.seen) == 1 and len(free.seen) == 1
        assert busy.seen[0][2] == free.seen[0][2]  # one session id follows the request
        free.busy = True
        refused = await http.post(url, json={"text": "Hi."}, headers=HEADERS)
        assert refused.status_code == 429
        assert refused.json()["detail"]["status"] == "no_capacity"


@pytest.mark.anyio
async def test_shutdown_aborts_an_answer_still_running_after_the_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="xtts_broker.http_proxy")
    scripted = ScriptedBalancer("scripted")
    broker_server = serve_broker(make_settings(service={"graceful_timeout_s": 0.3}))
    broker = await broker_server.__aenter__()
    stopped = False
    try:
        async with scripted.registered(broker), httpx.AsyncClient(timeout=10) as http:
            url = broker + "/v1/text-to-speech/v/stream"
            async with http.stream("POST", url, json={"text": "Hi."}, headers=HEADERS) as response:
                chunks = response.aiter_raw()
                assert await asyncio.wait_for(anext(chunks), 5) == b"first"
                stopping = asyncio.create_task(broker_server.__aexit__(None, None, None))
                stopped = True
                # Not a short file that looks complete: the transfer is cut off.
                with pytest.raises(httpx.RemoteProtocolError):
                    async for _ in chunks:
                        pass
                await asyncio.wait_for(stopping, 10)
            await asyncio.wait_for(scripted.left.wait(), 5)
        # The broker's drain stopped it (not Hypercorn's own timeout after the drain).
        assert "stopped by the broker's shutdown" in caplog.text
    finally:
        if not stopped:
            await broker_server.__aexit__(None, None, None)
