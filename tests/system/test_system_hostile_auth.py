"""Auth bypass attempts against a balancer, a broker-managed balancer and a broker.

Every attempt must be refused with the documented answer (websocket: the ``invalid_api_key``
error and close 1008; HTTP: 401, or 403 for a broker-managed balancer without the broker's
proof of origin; the broker's cluster endpoints: 401), and a legitimate request right after
must still work: each test ends with a normal session on every target it attacked.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from balancer_server import OTHER_KEY
from broker_servers import SECRET
from hostile_frames import Outcome, http_status, open_raw, text
from hostile_servers import (
    QUERY,
    STREAM_PATH,
    ErrorRecords,
    Target,
    assert_healthy,
    brokered,
    standalone,
)

from xtts_balancer.settings import hash_api_key
from xtts_core.cluster import DEREGISTER_PATH, HEARTBEAT_PATH, REGISTER_PATH, sign_request

pytestmark = pytest.mark.timeout(300)

ADMIN_KEY = "admin-key-for-hostile-tests"
REFUSED = "1008 invalid_api_key"
SPEAK = (text({"text": " "}), text({"text": "Hi."}), text({"text": ""}))


@pytest.fixture(scope="module")
def targets(
    tmp_path_factory: pytest.TempPathFactory, model_files: tuple[Path, Path]
) -> Iterator[dict[str, Target]]:
    tmp = tmp_path_factory.mktemp("hostile-auth")
    admin = {"key_hashes": [hash_api_key(ADMIN_KEY)]}
    with (
        standalone(tmp, model_files, admin=admin) as balancer,
        brokered(tmp, model_files) as (
            broker,
            _,
        ),
    ):
        yield {"balancer": balancer, "broker": broker}


@pytest.fixture
def checked(targets: dict[str, Target]) -> Iterator[dict[str, Target]]:
    with ErrorRecords().installed() as errors:
        yield targets
        for target in targets.values():
            assert_healthy(target, errors)


async def ws(
    port: int, headers: dict[str, str], frames: tuple[bytes, ...] = SPEAK, query: str = QUERY
) -> Outcome:
    raw = await open_raw(port, STREAM_PATH + query, headers)
    if raw.outcome.status == 101:
        await asyncio.gather(raw.send(*frames), raw.read_until_closed(10))
    await raw.close()
    return raw.outcome


def label(port: int, headers: dict[str, str], **kwargs: object) -> str:
    return asyncio.run(ws(port, headers, **kwargs)).label  # type: ignore[arg-type]


def test_api_keys_on_the_balancer_websocket(checked: dict[str, Target]) -> None:
    port, key = checked["balancer"].port, checked["balancer"].key
    refused = {
        "no key": label(port, {}),
        "wrong key": label(port, {"xi-api-key": "wrong-key-0123456789"}),
        "one character": label(port, {"xi-api-key": "k"}),
        "4 KiB key": label(port, {"xi-api-key": "k" * 4096}),
        "prefix of the key": label(port, {"xi-api-key": key[:-1]}),
        "key plus a character": label(port, {"xi-api-key": key + "x"}),
        "wrong bearer": label(port, {"authorization": "Bearer wrong-key-0123456789"}),
        "wrong key in the query": label(port, {}, query=QUERY + "&xi_api_key=wrong"),
        "wrong key in BOS": label(port, {}, frames=(text({"text": " ", "xi_api_key": "x"}),)),
        "key in an unknown BOS field": label(port, {}, frames=(text({"text": " ", "key": key}),)),
    }
    assert refused == dict.fromkeys(refused, REFUSED)
    accepted = {
        "header": label(port, {"xi-api-key": key}),
        "second key": label(port, {"xi-api-key": OTHER_KEY}),
        "bearer": label(port, {"authorization": f"Bearer {key}"}),
        "query": label(port, {}, query=QUERY + f"&xi_api_key={key}"),
        "BOS": label(port, {}, frames=(text({"text": " ", "xi_api_key": key}), *SPEAK[1:])),
    }
    assert accepted == dict.fromkeys(accepted, "1000")


def test_api_and_admin_keys_on_the_balancer_http_endpoints(checked: dict[str, Target]) -> None:
    target = checked["balancer"]
    body = json.dumps({"text": "Hi."}).encode()
    tts = "/v1/text-to-speech/narrator?output_format=pcm_16000"

    def status(method: str, path: str, headers: dict[str, str], data: bytes = b"") -> int | None:
        return asyncio.run(http_status(target.port, method, path, headers, data))

    for headers in (
        {},
        {"xi-api-key": "wrong"},
        {"xi-api-key": "k" * 4096},
        {"authorization": "Basic eDp5"},
    ):
        assert status("POST", tts, headers, body) == 401, headers
        assert status("GET", "/v1/voices", headers) == 401, headers
    assert status("POST", tts, {"xi-api-key": target.key}, body) == 200
    assert status("POST", tts + f"&xi_api_key={target.key}", {}, body) == 200
    for path in ("/metrics", "/workers"):
        for headers in ({}, {"xi-api-key": target.key}, {"authorization": "Bearer wrong"}):
            assert status("GET", path, headers) == 401, (path, headers)
        # The admin key only in a header: a query parameter would end up in access logs.
        assert status("GET", path + f"?xi_api_key={ADMIN_KEY}", {}) == 401, path
        assert status("GET", path, {"authorization": f"Bearer {ADMIN_KEY}"}) == 200, path


def test_a_broker_managed_balancer_accepts_only_fresh_broker_signatures(
    checked: dict[str, Target],
) -> None:
    target = checked["broker"]
    port = target.balancer.port  # straight to the balancer, around the broker

    def signed(secret: str = SECRET, path: str = STREAM_PATH, **kwargs: int) -> dict[str, str]:
        return sign_request(secret, "GET", path, session_id=secrets.token_hex(8), **kwargs)

    refused = {
        "client key only": label(port, {"xi-api-key": target.key}),
        "nothing": label(port, {}),
        "forged (wrong secret)": label(port, signed("wrong-secret-0123456789")),
        "expired": label(port, signed(timestamp=int(time.time()) - 120)),
        "from the future": label(port, signed(timestamp=int(time.time()) + 120)),
        "signed for another path": label(port, signed(path="/v1/text-to-speech/x/stream-input")),
        "no session id": label(port, sign_request(SECRET, "GET", STREAM_PATH)),
    }
    assert refused == dict.fromkeys(refused, REFUSED)

    once = signed()
    assert label(port, once) == "1000"
    assert label(port, once) == REFUSED  # the same signed handshake again: a replay

    body = json.dumps({"text": "Hi."}).encode()
    tts = "/v1/text-to-speech/narrator"
    for headers in ({"xi-api-key": target.key}, {}):
        assert asyncio.run(http_status(port, "POST", tts, headers, body)) == 403


def test_the_broker_refuses_unsigned_forged_stale_and_altered_cluster_requests(
    checked: dict[str, Target],
) -> None:
    url = f"http://127.0.0.1:{checked['broker'].port}"
    registration = {"id": "intruder", "host": "127.0.0.1", "port": 9, "capacity": 100, "idle": 100}
    body = json.dumps(registration).encode()

    def post(path: str, data: bytes, headers: dict[str, str]) -> int:
        return httpx.post(url + path, content=data, headers=headers, timeout=10).status_code

    def signed(path: str, data: bytes, secret: str = SECRET, **kwargs: int) -> dict[str, str]:
        nonce = secrets.token_hex(8)
        return sign_request(secret, "POST", path, session_id=nonce, body=data, **kwargs)

    for path in (REGISTER_PATH, HEARTBEAT_PATH, DEREGISTER_PATH):
        assert post(path, body, {}) == 401, path
        assert post(path, body, signed(path, body, "wrong-secret-0123456789")) == 401, path
        assert post(path, body, signed(path, body, timestamp=int(time.time()) - 120)) == 401
        altered = body.replace(b"127.0.0.1", b"10.0.0.66")  # signature over the original body
        assert post(path, altered, signed(path, body)) == 401, path
        no_id = sign_request(SECRET, "POST", path, body=body)
        assert post(path, body, no_id) == 401, path  # a request without its own id
    # A captured, correctly signed request is accepted once: replaying it within its validity
    # window is refused (the body here is refused anyway, 422, but only the first time).
    wildcard = json.dumps({**registration, "host": "0.0.0.0"}).encode()
    captured = signed(REGISTER_PATH, wildcard)
    assert post(REGISTER_PATH, wildcard, captured) == 422
    assert post(REGISTER_PATH, wildcard, captured) == 401
    assert post(REGISTER_PATH, wildcard, signed(REGISTER_PATH, wildcard)) == 422
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Bearer {SECRET}x"}):
        listing = httpx.get(url + "/broker/balancers", headers=headers, timeout=10)
        assert listing.status_code == 401, headers
    listing = httpx.get(
        url + "/broker/balancers", headers={"authorization": f"Bearer {SECRET}"}, timeout=10
    )
    ids = [entry["id"] for entry in listing.json()["balancers"]]
    assert len(ids) == 1 and "intruder" not in ids, ids  # only the real balancer


def test_client_keys_at_the_broker(checked: dict[str, Target]) -> None:
    target = checked["broker"]
    port = target.port
    refused = {
        "no key": label(port, {}),
        "wrong key": label(port, {"xi-api-key": "wrong"}),
        "a balancer's signature instead": label(
            port, sign_request(SECRET, "GET", STREAM_PATH, session_id="abc")
        ),
        "the cluster secret as key": label(port, {"xi-api-key": SECRET}),
        "wrong key in BOS": label(port, {}, frames=(text({"text": " ", "xi_api_key": "x"}),)),
    }
    assert refused == dict.fromkeys(refused, REFUSED)
    bos = text({"text": " ", "xi_api_key": target.key})
    assert label(port, {}, frames=(bos, *SPEAK[1:])) == "1000"
