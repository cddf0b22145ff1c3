"""Markup in text to speak: ``<break time="…"/>`` pauses, and SSML tags when parsing is on.

:func:`parse_markup` turns one segment of client text into what the speech layer does with it:
strings to speak and :class:`Pause` s to render as silence. ``<break time="1.5s"/>`` and
``<break time="500ms"/>`` are pauses whatever the client asked (ElevenLabs honours them for its
v2 models without ``enable_ssml_parsing``), at most :data:`MAX_BREAK_MS` (longer ones are clamped
and say so in :attr:`Pause.requested_ms`); a ``<break>`` without a readable ``time`` is dropped.
With ``ssml`` on, every other tag (``<speak>``, ``<prosody>``, ``<emphasis>``, ``<say-as>``,
``<phoneme>``, unknown ones) is removed and its inner text kept, and entities (``&amp;``) are
decoded; with it off, the rest of the text is spoken as sent.

:func:`open_tag_start` says where a text ends inside a tag that is still being sent, so a
streaming buffer never cuts a ``<break>`` in two. Torch-free.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

__all__ = ["MAX_BREAK_MS", "Pause", "open_tag_start", "parse_markup"]

#: The longest pause a ``<break>`` gives (ElevenLabs' cap), in milliseconds.
MAX_BREAK_MS = 3000

_BREAK = re.compile(r"<\s*break\b([^>]*)>", re.IGNORECASE)
_TIME = re.compile(r"""\btime\s*=\s*["']\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s)\s*["']""", re.IGNORECASE)
_TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")
_OPEN_TAG = re.compile(r"<[A-Za-z/!?][^<>]*$")


@dataclass(frozen=True)
class Pause:
    """Silence of ``ms`` milliseconds; ``requested_ms`` is what the tag asked for (more than
    ``ms`` when it was clamped to :data:`MAX_BREAK_MS`)."""

    ms: int
    requested_ms: float

    @property
    def clamped(self) -> bool:
        return self.requested_ms > self.ms


def parse_markup(text: str, *, ssml: bool) -> list[str | Pause]:
    """``text`` as strings to speak and pauses, in order (see the module docstring).

    Strings are returned as they stand between the pauses (whitespace kept, possibly empty of
    anything speakable); the caller decides what is worth a job.
    """
    parts: list[str | Pause] = []
    cursor = 0
    for match in _BREAK.finditer(text):
        parts.append(_clean(text[cursor : match.start()], ssml))
        pause = _pause(match.group(1))
        if pause is not None:
            parts.append(pause)
        cursor = match.end()
    parts.append(_clean(text[cursor:], ssml))
    return [part for part in parts if isinstance(part, Pause) or part]


def open_tag_start(text: str) -> int | None:
    """Where a tag that ``text`` has not closed yet begins (``None``: no tag is open)."""
    match = _OPEN_TAG.search(text)
    return match.start() if match else None


def _pause(attributes: str) -> Pause | None:
    match = _TIME.search(attributes)
    if match is None:
        return None
    value, unit = float(match.group(1)), match.group(2).lower()
    requested = value * 1000 if unit == "s" else value
    return Pause(round(min(requested, MAX_BREAK_MS)), requested)


def _clean(text: str, ssml: bool) -> str:
    if not ssml:
        return text
    return html.unescape(_TAG.sub("", text))
