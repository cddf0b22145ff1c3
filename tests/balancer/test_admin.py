"""Operational endpoints: the admin key and the separate admin listener.

The gate's rules are checked on a bare Starlette app (the listener is told apart by the port in
the ASGI scope, which the test client takes from its base URL); the wiring (``admin.port``,
``--admin-bind``, the real server's routes) once against the real ``batched_server``, which has
an admin listener and key.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from balancer_server import ADMIN_KEY, Server
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from test_capacity import wait_for

from xtts_balancer.admin import OPEN_PATHS, PROTECTED_PATHS, AdminGate
from xtts_balancer.settings import AdminSection, BalancerSettings, hash_api_key
from xtts_core.errors import SettingsError
from xtts_core.settings import load_settings

PUBLIC_PATHS = frozenset({"/v1/voices"})
ADMIN_PORT = 9100


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def client(admin: AdminSection, port: int = 8000) -> TestClient:
    paths = OPEN_PATHS | PROTECTED_PATHS | PUBLIC_PATHS
    app = Starlette(routes=[Route(path, _ok) for path in sorted(paths)])
    return TestClient(AdminGate(app, admin), base_url=f"http://testserver:{port}")


def statuses(test_client: TestClient, **headers: str) -> dict[str, int]:
    return {
        path: test_client.get(path, headers=headers).status_code
        for path in OPEN_PATHS | PROTECTED_PATHS | PUBLIC_PATHS
    }


def test_without_admin_settings_everything_is_open() -> None:
    assert set(statuses(client(AdminSection())).values()) == {200}


def test_the_admin_key_guards_only_metrics_and_workers() -> None:
    guarded = client(AdminSection(key_hashes=[hash_api_key(ADMIN_KEY)]))
    without = statuses(guarded)
    assert {p for p, code in without.items() if code == 401} == PROTECTED_PATHS
    assert {p for p, code in without.items() if code == 200} == OPEN_PATHS | PUBLIC_PATHS
    refused = guarded.get("/metrics", headers={"Authorization": "Bearer wrong-key"})
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["detail"]["status"] == "invalid_api_key"
    assert set(statuses(guarded, authorization=f"Bearer {ADMIN_KEY}").values()) == {200}
    assert guarded.get("/workers", headers={"xi-api-key": ADMIN_KEY}).status_code == 200
    assert guarded.get(f"/workers?xi_api_key={ADMIN_KEY}").status_code == 401  # never in URLs


def test_the_admin_listener_serves_only_operational_endpoints() -> None:
    admin = AdminSection(port=ADMIN_PORT)
    public = statuses(client(admin))
    assert {p for p, code in public.items() if code == 404} == PROTECTED_PATHS
    on_admin = statuses(client(admin, ADMIN_PORT))
    assert {p for p, code in on_admin.items() if code == 404} == PUBLIC_PATHS
    speech = client(admin, ADMIN_PORT)  # websocket_connect ignores the base URL's port
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        speech.websocket_connect(f"ws://testserver:{ADMIN_PORT}/v1/text-to-speech/x/stream-input"),
    ):
        pass
    assert refused.value.code == 1008


def test_key_and_listener_together() -> None:
    both = AdminSection(port=ADMIN_PORT, key_hashes=[hash_api_key(ADMIN_KEY)])
    on_admin = client(both, ADMIN_PORT)
    assert on_admin.get("/metrics").status_code == 401
    assert on_admin.get("/metrics", headers={"xi-api-key": ADMIN_KEY}).status_code == 200
    assert on_admin.get("/ready").status_code == 200


@pytest.mark.parametrize(
    ("admin", "message"),
    [
        ("{port: 8000}", "admin.port must differ from service.port"),
        ("{key_hashes: [secret]}", "sha256:<64 lower-case hex digits>"),
        ("{port: 0}", "admin.port"),
    ],
)
def test_bad_admin_settings_name_the_field(tmp_path: Path, admin: str, message: str) -> None:
    config = tmp_path / "b.yaml"
    config.write_text(f"model: {{directory: {tmp_path}}}\nauth: {{enabled: false}}\nadmin: {admin}")
    with pytest.raises(SettingsError) as info:
        load_settings(BalancerSettings, config)
    assert str(config) in str(info.value) and message in str(info.value)


def test_the_real_server_splits_its_endpoints(batched_server: Server) -> None:
    public, admin = batched_server.http_url, f"http://127.0.0.1:{batched_server.admin_port}"
    assert httpx.get(public + "/metrics").status_code == 404
    assert httpx.get(public + "/workers").status_code == 404
    wait_for(lambda: httpx.get(public + "/workers/idle").json() == {"idle_workers": 2})
    assert httpx.get(admin + "/metrics").status_code == 401
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert "xtts_sessions_total" in httpx.get(admin + "/metrics", headers=auth).text
    assert httpx.get(admin + "/workers", headers=auth).json()["workers"][0]["state"] == "ready"
    assert httpx.get(admin + "/ready").json()["ready"] is True
    assert httpx.get(admin + "/v1/models").status_code == 404
