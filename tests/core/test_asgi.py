"""LingeringClose: after the app closes a websocket, the connection stays until the client's
close frame (or the linger time), so the client reads the close instead of a reset."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from xtts_core.asgi import LingeringClose


class Client:
    """The server side of one ASGI websocket connection, as Hypercorn drives it: what the
    client sends (``incoming``), and what the app sent."""

    def __init__(self, *incoming: dict[str, Any], forever: bool = False) -> None:
        self.incoming = list(incoming)
        self.forever = forever
        self.sent: list[dict[str, Any]] = []
        self.received = 0

    async def receive(self) -> dict[str, Any]:
        if not self.incoming:
            if self.forever:
                await asyncio.sleep(3600)
            raise AssertionError("received past the client's close")
        self.received += 1
        return self.incoming.pop(0)

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


async def refuse(scope: Any, receive: Any, send: Any) -> None:
    """An app that reads the first message, then refuses with 1013 and returns at once."""
    await receive()
    await send({"type": "websocket.close", "code": 1013})


def run(client: Client, app: Any = refuse, linger_s: float = 1.0) -> None:
    asyncio.run(LingeringClose(app, linger_s)({"type": "websocket"}, client.receive, client.send))


def text(value: str) -> dict[str, Any]:
    return {"type": "websocket.receive", "text": value}


DISCONNECT = {"type": "websocket.disconnect", "code": 1013}


def test_reads_what_the_client_still_sends_until_its_close_frame() -> None:
    client = Client(text("bos"), text("hello"), text("world"), DISCONNECT)
    run(client)
    assert client.sent == [{"type": "websocket.close", "code": 1013}]
    assert client.received == 4 and client.incoming == []


def test_gives_up_after_the_linger_time_when_no_close_comes() -> None:
    client = Client(text("bos"), forever=True)
    start = time.monotonic()
    run(client, linger_s=0.2)
    assert 0.15 < time.monotonic() - start < 2.0


def test_does_not_read_after_the_client_has_gone() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.disconnect"
        await send({"type": "websocket.close", "code": 1000})

    client = Client(DISCONNECT)
    run(client, app)  # would fail in Client.receive if it read again
    assert client.received == 1


def test_an_app_that_does_not_close_is_left_alone() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    client = Client(text("bos"), forever=True)
    run(client, app)
    assert client.received == 1


def test_http_passes_through() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    asyncio.run(LingeringClose(app)({"type": "http"}, Client().receive, Client().send))
    assert seen == ["http"]
