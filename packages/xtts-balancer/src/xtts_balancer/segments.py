"""When buffered text becomes speech: sentence ends, the chunk schedule, flush and end of stream.

Text goes through the core's :class:`~xtts_core.text.split.IncrementalSplitter` as it arrives, so
every sentence is spoken as soon as its end is certain (an LLM's streamed tokens become speech
early, and "Dr. Smith" or "3.5" are never cut). What the splitter still holds is spoken as
ElevenLabs does it (docs/protocol.md §2.5): when it reaches the next
``chunk_length_schedule`` threshold (the last value repeats), on ``try_trigger_generation`` with
at least 50 characters (the schedule does not advance), or in ``auto_mode`` on every message --
each time up to the last whitespace, so a half-sent word stays (and so does a tag still being
sent, such as the start of a ``<break time="1s"/>``) -- and whole on ``flush`` and at end of
stream.
"""

from __future__ import annotations

from collections.abc import Sequence

from xtts_core.protocol import TRY_TRIGGER_MIN_CHARS
from xtts_core.text.markup import open_tag_start
from xtts_core.text.split import IncrementalSplitter

__all__ = ["TextBuffer"]


class TextBuffer:
    """One stream's text buffer; each call returns the segments to speak now, in order."""

    def __init__(self, language: str, schedule: Sequence[int], auto_mode: bool = False) -> None:
        self._language = language
        self._schedule = list(schedule)
        self._auto_mode = auto_mode
        self._step = 0
        self._splitter = IncrementalSplitter(language)
        self._pending = ""  # text the splitter holds, as sent (leading whitespace dropped)

    @property
    def pending(self) -> str:
        """Buffered text that is not yet spoken."""
        return self._pending

    def add(self, text: str, *, flush: bool = False, try_trigger: bool = False) -> list[str]:
        """Append ``text``; return the segments that are due."""
        segments = self._feed(text)
        if flush:
            return segments + self.finish()
        threshold = self._schedule[min(self._step, len(self._schedule) - 1)]
        if self._auto_mode or (try_trigger and len(self._pending) >= TRY_TRIGGER_MIN_CHARS):
            segments += self._take_complete_words()
        elif len(self._pending) >= threshold:
            self._step += 1
            segments += self._take_complete_words()
        return segments

    def finish(self) -> list[str]:
        """Everything still buffered (flush or end of stream)."""
        self._pending = ""
        return self._splitter.flush()

    def _feed(self, text: str) -> list[str]:
        buffered = self._pending + text if self._pending else text.lstrip()
        segments = self._splitter.feed(text)
        cursor = 0
        for segment in segments:  # segments are verbatim slices of the buffered text, in order
            cursor = buffered.index(segment, cursor) + len(segment)
        self._pending = buffered[cursor:].lstrip()
        return segments

    def _take_complete_words(self) -> list[str]:
        tag = open_tag_start(self._pending)
        end = len(self._pending) if tag is None else tag
        cut = max(self._pending.rfind(" ", 0, end), self._pending.rfind("\n", 0, end))
        if cut <= 0:
            return []
        head, rest = self._pending[:cut].strip(), self._pending[cut:].lstrip()
        self._splitter = IncrementalSplitter(self._language)  # restart after the spoken words
        self._pending = ""
        segments = self._feed(rest) if rest else []
        return ([head] if head else []) + segments
