"""The broker's cluster endpoints: signed registration, heartbeat, deregistration, listing."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from broker_servers import SECRET, make_settings
from starlette.testclient import TestClient

from xtts_broker.app import create_app
from xtts_core.cluster import REGISTER_PATH, sign_request


@pytest.fixture
def remote() -> Iterator[TestClient]:
    """A broker that listens off loopback, as in production."""
    with TestClient(create_app(make_settings(service={"host": "0.0.0.0"}))) as client:
        yield client


def post(
    client: TestClient, path: str, body: Any, *, secret: str = SECRET, timestamp: int | None = None
) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    nonce = secrets.token_hex(8)
    headers = sign_request(secret, "POST", path, session_id=nonce, body=raw, timestamp=timestamp)
    return client.post(path, content=raw, headers=headers)


def listing(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/broker/balancers", headers={"authorization": f"Bearer {SECRET}"})
    assert response.status_code == 200
    balancers: list[dict[str, Any]] = response.json()["balancers"]
    return balancers


ORIGINAL_BODY = {"id": "gpu-1", "host": "10.0.0.5", "port": 8000, "instances": 2}


def test_register_heartbeat_deregister(remote: TestClient) -> None:
    response = post(remote, REGISTER_PATH, ORIGINAL_BODY)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "heartbeat_interval_s": 5.0, "heartbeat_ttl_s": 15.0}
    [entry] = listing(remote)
    assert entry | {"last_seen_s": 0} == {
        "id": "gpu-1", "host": "10.0.0.5", "port": 8000, "instances": 2,
        "url": "http://10.0.0.5:8000", "version": "unknown", "health": "healthy",
        "down_reason": None, "voices_ready": True, "capacity": 2, "idle": 2, "reserved": 0, "free": 2, "last_seen_s": 0,
    }  # fmt: skip
    beat = post(remote, "/broker/heartbeat", {"id": "gpu-1", "idle": 1, "capacity": 2})
    assert beat.status_code == 200
    assert listing(remote)[0]["idle"] == 1
    gone = post(remote, "/broker/deregister", {"id": "gpu-1"})
    assert gone.json() == {"status": "ok", "removed": True}
    assert listing(remote) == []
    unknown = post(remote, "/broker/heartbeat", {"id": "gpu-1", "idle": 1, "capacity": 2})
    assert unknown.status_code == 404
    assert "register again" in unknown.json()["detail"]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"secret": "not-the-cluster-secret"}, "does not match"),
        ({"timestamp": int(time.time()) - 600}, "off this host's clock"),
    ],
)
def test_registration_needs_the_secret(remote: TestClient, kwargs: Any, fragment: str) -> None:
    response = post(remote, REGISTER_PATH, ORIGINAL_BODY, **kwargs)
    assert response.status_code == 401
    assert fragment in response.json()["detail"]
    assert listing(remote) == []


def test_unsigned_registration_is_refused(remote: TestClient) -> None:
    response = remote.post(REGISTER_PATH, json=ORIGINAL_BODY)
    assert response.status_code == 401
    assert "missing proof of origin" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 422, "Invalid JSON"),
        ([1, 2], 422, "BalancerRegistration"),
        ({"id": "gpu-1", "host": "10.0.0.5"}, 422, "port: Field required"),
        ({**ORIGINAL_BODY, "port": "http"}, 422, "port"),
        ({**ORIGINAL_BODY, "host": "127.0.0.1"}, 422, "loopback but this broker is remote"),
        ({**ORIGINAL_BODY, "url": "http://localhost:8000"}, 422, "loopback"),
        ({**ORIGINAL_BODY, "host": "0.0.0.0"}, 422, "wildcard"),
        (b"x" * 70_000, 413, "larger than"),
    ],
)
def test_malformed_registrations_store_nothing(
    remote: TestClient, body: Any, status: int, fragment: str
) -> None:
    response = post(remote, REGISTER_PATH, body)
    assert response.status_code == status
    assert fragment in response.json()["detail"]
    assert listing(remote) == []


def test_a_broker_on_loopback_accepts_loopback_balancers() -> None:
    with TestClient(create_app(make_settings())) as local:
        assert post(local, REGISTER_PATH, {**ORIGINAL_BODY, "host": "127.0.0.1"}).status_code == 200


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {SECRET}"])
def test_listing_needs_the_secret(remote: TestClient, authorization: str | None) -> None:
    headers = {"authorization": authorization} if authorization else {}
    assert remote.get("/broker/balancers", headers=headers).status_code == 401


def test_a_request_whose_body_never_arrives_is_answered_not_raised() -> None:
    """A balancer shutting down mid-deregistration leaves before its body: a 400, not an ASGI
    error in the broker's log."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/broker/deregister", "raw_path": b"/broker/deregister",
        "query_string": b"", "root_path": "", "headers": [(b"content-length", b"40")],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 19000),
    }  # fmt: skip
    asyncio.run(create_app(make_settings())(scope, receive, send))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400


def test_a_signed_request_is_accepted_once(remote: TestClient) -> None:
    """A captured registration (or heartbeat) replayed while its signature is still valid is
    refused: every signed cluster request carries its own id, claimed once."""
    raw = json.dumps(ORIGINAL_BODY).encode()
    headers = sign_request(SECRET, "POST", REGISTER_PATH, session_id="req-1", body=raw)
    assert remote.post(REGISTER_PATH, content=raw, headers=headers).status_code == 200
    replayed = remote.post(REGISTER_PATH, content=raw, headers=headers)
    assert replayed.status_code == 401 and "already used" in replayed.text
    unsigned_id = sign_request(SECRET, "POST", REGISTER_PATH, body=raw)
    without_id = remote.post(REGISTER_PATH, content=raw, headers=unsigned_id)
    assert without_id.status_code == 401 and "needs a" in without_id.text
