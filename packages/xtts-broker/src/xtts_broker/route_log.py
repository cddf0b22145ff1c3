"""The one log line of a session the broker routed (a websocket, or an HTTP speech request).

:class:`RouteRecord` is filled while the broker relays and written once, at INFO on the
``xtts_broker.session`` logger, when the session ends: refused at the door, refused by every
balancer, or relayed to the end. Its fields are keys of the JSON line (``service.log_format:
json``) or a ``key=value`` tail of the text line (:mod:`xtts_core.logs`):

``session_id`` (the id the broker signs into its connection to the balancer, so the balancer's
line for the session carries the same), ``dialect`` (``stream-input``, ``multi-stream-input``,
``http``), ``voice``, ``strategy``, ``balancer_id`` (the balancer that served it, or the last one
tried), ``attempts``, ``close_code`` (websocket) or ``status`` (HTTP), ``error`` (the broker's
own error code, else the first one a balancer sent), ``first_audio_ms`` (as the broker saw it:
from the client's first text, or from the request, to the first audio relayed), ``bytes_out`` and
``bytes_in`` (relayed to and from the client) and ``key_id``
(:func:`xtts_core.cluster.api_key_id`; never the key).

Frames are looked into only while that can still change the line (the first text, the first
audio, a small error message), so a long stream costs one length check per frame.

The invariant: the record is written at most once, and nothing in it is the API key.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Final

from xtts_broker.frames import Frame
from xtts_core.cluster import api_key_id

__all__ = ["RouteRecord"]

logger = logging.getLogger("xtts_broker.session")

#: Longer frames are audio: never parsed for an error once the first audio was seen.
_SMALL_FRAME: Final = 4096


def _json_object(frame: Frame) -> dict[str, Any] | None:
    if not isinstance(frame, str):
        return None
    try:
        body = json.loads(frame)
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


@dataclass
class RouteRecord:
    """What the broker did with one session (see the module docstring)."""

    session_id: str
    dialect: str
    voice: str
    strategy: str
    started: float = field(default_factory=time.monotonic)
    key_id: str | None = None
    balancer_id: str | None = None
    attempts: int = 0
    close_code: int | None = None
    status: int | None = None
    error: str | None = None
    first_audio_ms: float | None = None
    bytes_out: int = 0
    bytes_in: int = 0
    _text_at: float | None = None
    _error_body: bytes = b""
    _written: bool = False

    def key(self, key: str | None) -> None:
        """The client's key (valid, or auth is off), named by its id."""
        self.key_id = api_key_id(key) if key else None

    def tried(self, balancer_id: str) -> None:
        self.attempts += 1
        self.balancer_id = balancer_id

    def refused(self, error: str, status: int | None = None) -> None:
        """The broker answered with its own ``error`` (an HTTP one with ``status``)."""
        self.error = error
        self.status = status if status is not None else self.status

    def from_client(self, frame: Frame) -> None:
        """A client frame relayed to the balancer: the first one with text starts the clock."""
        self.bytes_in += len(frame)
        if self._text_at is None:
            body = _json_object(frame)
            if body is not None and str(body.get("text") or "").strip():
                self._text_at = time.monotonic()

    def to_client(self, frame: Frame) -> None:
        """A balancer frame relayed to the client: the first audio, a balancer's error code."""
        self.bytes_out += len(frame)
        if self.first_audio_ms is not None and len(frame) > _SMALL_FRAME:
            return
        body = _json_object(frame)
        if body is None:
            return
        if self.first_audio_ms is None and body.get("audio"):
            self.first_audio_seen()
        error = body.get("error")
        if self.error is None and isinstance(error, str):
            self.error = error

    def body_to_client(self, chunk: bytes) -> None:
        """A chunk of an HTTP answer relayed: of a success, the first one is the first audio;
        of an error, the start of its body is kept for :meth:`answer_complete`."""
        self.bytes_out += len(chunk)
        if self.status is not None and self.status >= 400:
            self._error_body = (self._error_body + chunk)[:_SMALL_FRAME]
        elif chunk and self.first_audio_ms is None:
            self.first_audio_seen()

    def answer_complete(self) -> None:
        """The HTTP answer was relayed whole: an error answer's code is the line's ``error``."""
        body = _json_object(self._error_body.decode("utf-8", "replace"))
        detail = body.get("detail") if body is not None else None
        if isinstance(detail, dict) and isinstance(detail.get("status"), str):
            self.error = self.error or detail["status"]

    def first_audio_seen(self) -> None:
        since = self._text_at if self._text_at is not None else self.started
        self.first_audio_ms = (time.monotonic() - since) * 1000

    def write(self) -> None:
        """Log the line (once)."""
        if self._written:
            return
        self._written = True
        http = self.status is not None
        outcome = {"status": self.status} if http else {"close_code": self.close_code}
        first = self.first_audio_ms
        logger.info(
            "session finished",
            extra={
                "session_id": self.session_id,
                "dialect": self.dialect,
                "voice": self.voice,
                "strategy": self.strategy,
                "balancer_id": self.balancer_id,
                "attempts": self.attempts,
                **outcome,
                "error": self.error,
                "first_audio_ms": round(first, 1) if first is not None else None,
                "bytes_out": self.bytes_out,
                "bytes_in": self.bytes_in,
                "key_id": self.key_id,
            },
        )
