"""The one log line of a finished speech session, for an operator's log pipeline.

Every :class:`~xtts_balancer.session.SpeechSession` carries a :class:`SessionRecord` that it fills
as it runs (characters and audio as they are spoken, the key, the error) and writes once, at
INFO on the ``xtts_balancer.session`` logger, when it closes: one line per websocket connection
(a multi-stream-input connection's contexts summed) and one per HTTP speech request, whatever
dialect it came in by. The fields are keys of the JSON line (``service.log_format: json``) or a
``key=value`` tail of the text line (:mod:`xtts_core.logs`):

``session_id`` (the broker's in broker mode, so the broker's line for the session has the same),
``dialect``, ``voice``, ``output_format``, ``characters`` (sent to synthesis), ``first_audio_ms``
(from the session's first text, or its start when the text came with the request, to its first
audio), ``audio_s``, ``rtf`` (compute time over audio time of its finished segments),
``close_code`` (websocket) or ``status`` (HTTP), ``error`` (the protocol's error code, or none),
``key_id`` (:func:`xtts_core.cluster.api_key_id`; never the key) and ``balancer_id``.

The invariant: the record is written at most once, and nothing in it is the API key.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from xtts_core.protocol import http_status

__all__ = ["SessionRecord"]

logger = logging.getLogger("xtts_balancer.session")


@dataclass
class SessionRecord:
    """What one session did, accumulated while it runs (see the module docstring)."""

    started: float = field(default_factory=time.monotonic)
    output_format: str | None = None
    key_id: str | None = None
    error: str | None = None
    close_code: int | None = None
    """The websocket's close code; ``None`` for HTTP."""
    http_status: int | None = None
    """The HTTP answer's status (unset: 200, or the error's status)."""
    characters: int = 0
    audio_ms: float = 0.0
    first_audio_ms: float | None = None
    _text_at: float | None = None
    _compute_s: float = 0.0
    _finished_audio_ms: float = 0.0
    _written: bool = False

    def answered(self, status: int, error: str | None = None) -> None:
        """An HTTP session's answer: its status, and the error code it carried."""
        self.http_status = status
        self.error = error or self.error

    def text_arrived(self) -> None:
        """The client sent text: the clock of ``first_audio_ms`` starts (once)."""
        if self._text_at is None:
            self._text_at = time.monotonic()

    def spoken(self, characters: int) -> None:
        """A segment of ``characters`` went to synthesis."""
        self.characters += characters

    def audio(self, duration_ms: float) -> None:
        """A piece of audio of ``duration_ms`` went out."""
        if duration_ms and self.first_audio_ms is None:
            since = self._text_at if self._text_at is not None else self.started
            self.first_audio_ms = (time.monotonic() - since) * 1000
        self.audio_ms += duration_ms

    def segment_done(self, compute_s: float, audio_ms: float) -> None:
        """A segment finished: ``compute_s`` of worker time made ``audio_ms`` of audio."""
        self._compute_s += compute_s
        self._finished_audio_ms += audio_ms

    def fields(self) -> dict[str, Any]:
        """The line's numbers and outcome (the session adds who and where)."""
        rtf = (
            self._compute_s / (self._finished_audio_ms / 1000) if self._finished_audio_ms else None
        )
        outcome: dict[str, Any]
        if self.close_code is not None:
            outcome = {"close_code": self.close_code}
        else:
            status = self.http_status or (http_status(self.error) if self.error else 200)
            outcome = {"status": status}
        first = self.first_audio_ms
        return {
            "output_format": self.output_format,
            "characters": self.characters,
            "first_audio_ms": round(first, 1) if first is not None else None,
            "audio_s": round(self.audio_ms / 1000, 3),
            "rtf": round(rtf, 3) if rtf is not None else None,
            **outcome,
            "error": self.error,
            "key_id": self.key_id,
        }

    def write(self, who: dict[str, Any]) -> None:
        """Log the line once; ``who`` are the session's ids (session, dialect, voice, balancer)."""
        if self._written:
            return
        self._written = True
        logger.info("session finished", extra={**who, **self.fields()})
