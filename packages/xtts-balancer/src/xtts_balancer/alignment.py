"""Estimated character timings for the audio messages of one segment.

The model does not say when it speaks which character, so timings are estimated: character ``i``
of a segment is expected to start at ``i * ms_per_char``. A message covering ``[t0, t0 + d)`` of
the segment's audio takes the characters whose expected start is before ``t0 + d`` (the
segment's last message takes all that remain) and spreads them evenly over its own ``d``
milliseconds. So every character is reported exactly once per stream, in order, and each
message's timings lie inside its own audio (docs/protocol.md §2.4.1). Characters of a
segment that produced no audio carry over to the next segment's first message.
"""

from __future__ import annotations

import math

from xtts_core.protocol import Alignment

__all__ = ["SegmentAligner"]


class SegmentAligner:
    """Hands out the characters of the segments spoken so far, message by message."""

    def __init__(self, ms_per_char: float) -> None:
        self._ms_per_char = ms_per_char
        self._rate = ms_per_char
        self._chars: list[str] = []  # not yet reported
        self._carried = 0  # characters of earlier segments, due at once
        self._taken = 0  # characters reported since the segment started
        self._elapsed_ms = 0.0  # audio of the segment described so far

    def start(self, text: str, speed: float) -> None:
        """Begin a segment (characters carried over from a silent segment stay in front)."""
        self._rate = self._ms_per_char / speed
        self._carried = len(self._chars)
        self._chars.extend(text)
        self._taken = 0
        self._elapsed_ms = 0.0

    def take(self, duration_ms: float, *, last: bool) -> Alignment | None:
        """Timings for the next ``duration_ms`` of audio; ``last`` ends the segment."""
        self._elapsed_ms += duration_ms
        if last:
            count = len(self._chars)
        else:
            due = self._carried + math.ceil(self._elapsed_ms / self._rate)  # started by now
            count = max(0, min(due - self._taken, len(self._chars)))
        chars, self._chars = self._chars[:count], self._chars[count:]
        self._taken += count
        if not chars:
            return None
        starts, durations = _spread(len(chars), round(duration_ms))
        return Alignment(chars=chars, char_start_times_ms=starts, char_durations_ms=durations)


def _spread(count: int, total_ms: int) -> tuple[list[int], list[int]]:
    """``count`` characters evenly over ``total_ms``: integer starts and durations that add up."""
    edges = [round(i * total_ms / count) for i in range(count + 1)]
    return edges[:-1], [edges[i + 1] - edges[i] for i in range(count)]
