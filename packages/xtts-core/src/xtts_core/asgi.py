"""ASGI middleware both services share: a websocket the server closes waits for the client's
close frame before the connection goes.

Why: when an application closes a websocket (a refusal with 1013, an error with 1008) and
returns, Hypercorn closes the TCP connection at once. A client that was still sending (its text
right behind its first message, as every streaming client does) has bytes the server never read,
and closing a socket with unread bytes makes the kernel send RST instead of FIN; the client's
kernel may then drop what it had received but not yet delivered: the error message and the close
frame. The client sees 1006 (abnormal closure) with no reason, instead of the documented code.
RFC 6455 §7.1.1 asks the server to close TCP only after the close handshake; this middleware
keeps reading (and discarding) what the client sends after the server's close frame until the
client's close frame arrives, or ``linger_s`` passes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["LingeringClose"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


class LingeringClose:
    """Wrap an ASGI app; see the module docstring."""

    def __init__(self, app: App, linger_s: float = 2.0) -> None:
        self.app = app
        self.linger_s = linger_s

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        closed_by_server = False
        disconnected = False

        async def tracked_receive() -> Message:
            nonlocal disconnected
            message = await receive()
            disconnected = disconnected or message["type"] == "websocket.disconnect"
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal closed_by_server
            closed_by_server = closed_by_server or message["type"] == "websocket.close"
            await send(message)

        await self.app(scope, tracked_receive, tracked_send)
        if closed_by_server and not disconnected:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.linger_s):
                    while (await receive())["type"] != "websocket.disconnect":
                        pass
