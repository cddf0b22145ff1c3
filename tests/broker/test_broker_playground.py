"""The playground through the broker (xtts_broker.playground): a real broker on this test's loop,
and stand-in balancers (broker_fake_balancer) that also serve a playground file.

The files come from a healthy balancer with their status and the page's headers, and nothing of
the client's request goes with them; the broker itself answers ``config.json`` with its own auth;
an unreachable balancer is passed over; without a balancer the answer is 503 ``no_balancer``.
The real page through a real broker, in a browser, is tests/browser/test_playground.py.
"""

from __future__ import annotations

import logging

import httpx
import pytest
from broker_fake_balancer import FakeBalancer
from broker_servers import CLIENT_KEY, SECRET, make_settings, serve_broker
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

PAGE = b"<!doctype html><title>page</title>"
POLICY = "default-src 'self'"


def with_playground(fake: FakeBalancer, seen: list[dict[str, str]]) -> FakeBalancer:
    """``fake`` serving ``/playground/`` (and 404 for any other file), recording the headers
    each request came with."""

    async def page(request: Request) -> Response:
        seen.append(dict(request.headers))
        if request.path_params.get("name", "") != "":
            return Response(b"no such file", 404, media_type="text/plain")
        return Response(
            PAGE,
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": POLICY, "X-Balancer-Internal": "secret"},
        )

    fake.app.router.routes.extend([Route("/playground/", page), Route("/playground/{name}", page)])
    return fake


async def test_the_page_is_relayed_from_a_balancer_with_its_headers_only() -> None:
    seen: list[dict[str, str]] = []
    fake = with_playground(FakeBalancer("b1", SECRET), seen)
    async with (
        serve_broker(make_settings()) as broker,
        fake.running(broker),
        httpx.AsyncClient(timeout=10) as http,
    ):
        response = await http.get(
            broker + "/playground/", headers={"xi-api-key": CLIENT_KEY, "cookie": "a=b"}
        )
        assert (response.status_code, response.content) == (200, PAGE)
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["content-security-policy"] == POLICY
        assert "x-balancer-internal" not in response.headers
        # The files are public: nothing of the client's request is passed on.
        assert "xi-api-key" not in seen[0] and "cookie" not in seen[0]
        missing = await http.get(broker + "/playground/missing.js")
        assert (missing.status_code, missing.content) == (404, b"no such file")
        for path in ("/", "/playground"):
            redirect = await http.get(broker + path)
            assert (redirect.status_code, redirect.headers["location"]) == (307, "/playground/")


async def test_an_unreachable_balancer_is_passed_over(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "xtts_broker.playground")
    seen: list[dict[str, str]] = []
    gone = FakeBalancer("gone", SECRET)
    async with serve_broker(make_settings()) as broker:
        async with gone.running(broker):
            pass  # registered, then its server stopped: the broker still lists it
        (await gone.register(broker)).raise_for_status()
        live = with_playground(FakeBalancer("live", SECRET), seen)
        async with live.running(broker), httpx.AsyncClient(timeout=10) as http:
            response = await http.get(broker + "/playground/")
            assert (response.status_code, response.content) == (200, PAGE)
    assert "from balancer gone failed" in caplog.text  # tried first, then passed over


async def test_without_a_balancer_the_answer_says_so() -> None:
    async with serve_broker(make_settings()) as broker, httpx.AsyncClient(timeout=10) as http:
        response = await http.get(broker + "/playground/")
        assert response.status_code == 503
        assert response.json()["detail"]["status"] == "no_balancer"


@pytest.mark.parametrize("enabled", [True, False])
async def test_the_page_is_told_whether_the_broker_needs_a_key(enabled: bool) -> None:
    settings = make_settings(auth={"enabled": enabled})
    async with serve_broker(settings) as broker, httpx.AsyncClient(timeout=10) as http:
        response = await http.get(broker + "/playground/config.json")
        assert response.json() == {"auth_required": enabled}
