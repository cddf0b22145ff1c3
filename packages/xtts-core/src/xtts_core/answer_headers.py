"""ASGI middleware both services share: ElevenLabs' ``request-id`` (and more) on every HTTP answer.

ElevenLabs answers every HTTP request with a ``request-id`` header, and its speech answers with
``character-cost`` and the concurrency headers ``current-concurrent-requests`` /
``maximum-concurrent-requests``. :class:`AnswerHeaders` gives each HTTP request its id before the
app sees it (``request.state.request_id``: the id the service logs the request under) and adds,
to the answer's start, ``request-id``, the headers the service's ``extra`` callable returns (the
concurrency headers of a balancer's slot pool) and ``character-cost`` when the endpoint set
``request.state.character_cost``. A header the answer already carries is left as it is, so a
broker relaying a balancer's answer passes the balancer's on. Websockets pass through untouched.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any, Final

from xtts_core.asgi import App, Message, Receive, Send

__all__ = ["CHARACTER_COST", "REQUEST_ID", "AnswerHeaders"]

#: The header names, as ElevenLabs sends them.
REQUEST_ID: Final = "request-id"
CHARACTER_COST: Final = "character-cost"

Scope = MutableMapping[str, Any]


class AnswerHeaders:
    """Wrap an ASGI app; see the module docstring.

    Args:
        request_id: the id of a request, from its scope (a fresh one, or one the request
            carries from a trusted sender).
        extra: more ``(name, value)`` headers for an answer, computed when it starts.
    """

    def __init__(
        self, app: App, request_id: Callable[[Scope], str],
        extra: Callable[[Scope], list[tuple[str, str]]] | None = None,
    ) -> None:  # fmt: skip
        self.app = app
        self._request_id = request_id
        self._extra = extra

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["request_id"] = self._request_id(scope)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                wanted = [(REQUEST_ID, state["request_id"])]
                if self._extra is not None:
                    wanted += self._extra(scope)
                if "character_cost" in state:
                    wanted.append((CHARACTER_COST, str(state["character_cost"])))
                headers += [
                    (name.encode("latin-1"), value.encode("latin-1"))
                    for name, value in wanted
                    if name.encode("latin-1") not in present
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
