"""The broker/balancer contract: schemas, proof of origin, replay guard, hashed client keys."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from xtts_core import cluster
from xtts_core.cluster import (
    SESSION_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ApiKeys,
    BalancerHeartbeat,
    BalancerRegistration,
    OriginError,
    ReplayGuard,
    hash_api_key,
    sign_request,
    verify_request,
)

SECRET = "s3cret-of-the-cluster"
NOW = 1_800_000_000


def test_all_names_exist() -> None:
    for name in cluster.__all__:
        assert hasattr(cluster, name), name


def test_imports_without_torch() -> None:
    code = "import sys, xtts_core.cluster; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- schemas --------------------------------------------------------------------------------------


def test_original_registration_body_is_accepted_with_defaults() -> None:
    reg = BalancerRegistration.model_validate(
        {"id": "gpu-1", "host": "10.0.0.5", "port": 8000, "instances": 2}
    )
    assert reg.total_capacity == 2
    assert reg.idle is None
    assert reg.base_url == "http://10.0.0.5:8000"
    assert reg.advertised_host == "10.0.0.5"


def test_url_overrides_host_and_port() -> None:
    reg = BalancerRegistration(
        id="b", host="0.0.0.0", port=8000, url="https://gpu.example:443/", capacity=4, idle=3
    )
    assert reg.base_url == "https://gpu.example:443"
    assert reg.advertised_host == "gpu.example"


def test_ipv6_host_is_bracketed() -> None:
    assert BalancerRegistration(id="b", host="fd00::1", port=9).base_url == "http://[fd00::1]:9"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"host": "h", "port": 1}, "id"),
        ({"id": "b", "host": "h", "port": 0}, "port"),
        ({"id": "b", "host": "h", "port": "x"}, "port"),
        ({"id": "bad id!", "host": "h", "port": 1}, "id"),
        ({"id": "b", "host": "h", "port": 1, "url": "ftp://h"}, "http(s)"),
        ({"id": "b", "host": "h", "port": 1, "url": "http://h/x"}, "path"),
        ({"id": "b", "host": "h", "port": 1, "capacity": 2, "idle": 3}, "exceeds"),
    ],
)
def test_malformed_registrations_are_rejected(body: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        BalancerRegistration.model_validate(body)


def test_heartbeat_idle_cannot_exceed_capacity() -> None:
    assert BalancerHeartbeat(id="b", idle=2, capacity=2).idle == 2
    with pytest.raises(ValidationError, match="exceeds"):
        BalancerHeartbeat(id="b", idle=3, capacity=2)


# --- proof of origin ------------------------------------------------------------------------------


def _signed(session_id: str = "") -> dict[str, str]:
    path = "/v1/text-to-speech/v/stream-input"
    return sign_request(SECRET, "GET", path, session_id=session_id, timestamp=NOW)


def test_sign_then_verify_returns_the_session_id() -> None:
    headers = _signed(session_id="abc-1")
    assert set(headers) == {TIMESTAMP_HEADER, SIGNATURE_HEADER, SESSION_ID_HEADER}
    sid = verify_request(SECRET, "get", "/v1/text-to-speech/v/stream-input", headers, now=NOW + 5)
    assert sid == "abc-1"


def test_body_is_covered() -> None:
    headers = sign_request(SECRET, "POST", "/broker/register", body=b'{"id":"a"}', timestamp=NOW)
    assert (
        verify_request(SECRET, "POST", "/broker/register", headers, body=b'{"id":"a"}', now=NOW)
        == ""
    )
    with pytest.raises(OriginError, match="does not match"):
        verify_request(SECRET, "POST", "/broker/register", headers, body=b'{"id":"b"}', now=NOW)


@pytest.mark.parametrize(
    ("secret", "method", "path", "session"),
    [
        ("other-secret", "GET", "/v1/text-to-speech/v/stream-input", "abc-1"),
        (SECRET, "POST", "/v1/text-to-speech/v/stream-input", "abc-1"),
        (SECRET, "GET", "/v1/text-to-speech/w/stream-input", "abc-1"),
        (SECRET, "GET", "/v1/text-to-speech/v/stream-input", "abc-2"),
    ],
)
def test_any_change_breaks_the_signature(secret: str, method: str, path: str, session: str) -> None:
    headers = {**_signed(session_id="abc-1"), SESSION_ID_HEADER: session}
    with pytest.raises(OriginError, match="does not match"):
        verify_request(secret, method, path, headers, now=NOW)


@pytest.mark.parametrize("offset", [-31, 31])
def test_clock_skew_beyond_the_limit_is_rejected(offset: int) -> None:
    with pytest.raises(OriginError, match="off this host's clock"):
        verify_request(
            SECRET, "GET", "/v1/text-to-speech/v/stream-input", _signed(), now=NOW + offset
        )


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({}, "missing proof of origin"),
        ({TIMESTAMP_HEADER: "12x", SIGNATURE_HEADER: "v1=00"}, "Unix seconds"),
        (
            {TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: "v1=00", SESSION_ID_HEADER: "a b"},
            "characters",
        ),
        ({TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: "x1=ünïcode"}, "does not match"),
    ],
)
def test_malformed_headers_are_rejected(headers: dict[str, str], fragment: str) -> None:
    with pytest.raises(OriginError, match=fragment):
        verify_request(SECRET, "GET", "/p", headers, now=NOW)


def test_signing_refuses_empty_secret_and_bad_session_ids() -> None:
    with pytest.raises(OriginError, match="empty secret"):
        sign_request("", "GET", "/p")
    with pytest.raises(OriginError, match="characters"):
        sign_request(SECRET, "GET", "/p", session_id="a\nb")


def test_replay_guard_accepts_each_session_once_within_the_window() -> None:
    guard = ReplayGuard(max_skew_s=30)
    guard.claim("s1", now=NOW)
    with pytest.raises(OriginError, match="already used"):
        guard.claim("s1", now=NOW + 10)
    with pytest.raises(OriginError, match="needs a"):
        guard.claim("", now=NOW)
    guard.claim("s2", now=NOW + 61)  # s1 expired and was dropped
    assert len(guard) == 1


# --- client API keys ------------------------------------------------------------------------------


def test_api_keys_are_checked_against_their_hashes() -> None:
    keys = ApiKeys([hash_api_key("alpha"), hash_api_key("beta")])
    assert len(keys) == 2
    assert keys.check("beta")
    assert not keys.check("gamma")
    assert not keys.check("")
    assert not keys.check(None)


def test_api_key_hash_format() -> None:
    assert hash_api_key("k").startswith("sha256:")
    assert len(hash_api_key("k")) == len("sha256:") + 64
    with pytest.raises(ValueError, match="must not be empty"):
        hash_api_key("")
    with pytest.raises(ValueError, match="sha256:<64"):
        ApiKeys(["plaintext-key"])
