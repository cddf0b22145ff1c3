"""Read back what the tone backend said: the check that every session got its own audio.

The tone backend (``xtts_balancer.backends.tone``) turns each character into ``ms_per_char`` of a
sine whose pitch depends only on ``ord(char) % 64`` (whitespace is silence), starting at phase 0.
Given 16-bit PCM at the backend's rate, every window of one character's length is matched
against the 64 possible tones and silence; the best fit is the character's class. Comparing the
classes heard with the classes of the text sent tells whether a session got exactly its own
audio: a truncated stream, a repeated segment or another session's words all change the sequence.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xtts_balancer.backends.tone import AMPLITUDE, SAMPLE_RATE, tone_frequency

__all__ = ["SILENCE", "ToneReader", "expected_classes"]

SILENCE = -1
_CLASSES = 64


def _class_of(char: str) -> int:
    return SILENCE if char.isspace() else ord(char) % _CLASSES


def expected_classes(text: str) -> list[int]:
    """The classes a text's audio must read back as, whitespace left out: the services may
    trim or join the spaces between segments, which only changes the silence."""
    return [c for c in map(_class_of, text) if c != SILENCE]


class ToneReader:
    """Classify ``ms_per_char`` windows of 16-bit PCM at the tone backend's rate."""

    def __init__(self, ms_per_char: float) -> None:
        self.window = round(SAMPLE_RATE * ms_per_char / 1000)
        t = np.arange(self.window) / SAMPLE_RATE
        # One template per class (by a character of that class), and silence as the last row.
        chars = [chr(64 + k) for k in range(_CLASSES)]
        tones = [AMPLITUDE * np.sin(2 * np.pi * tone_frequency(c) * t) for c in chars]
        self._templates = np.stack([*tones, np.zeros(self.window)])
        self._labels = np.array([ord(c) % _CLASSES for c in chars] + [SILENCE])
        self._energy = (self._templates**2).sum(axis=1)

    def read(self, pcm: bytes) -> tuple[list[int], int]:
        """The non-silent classes heard in ``pcm``, and how many samples are left over after
        the last whole window (0 for any audio the tone backend made)."""
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32767
        whole = len(samples) // self.window
        windows: NDArray[np.float64] = samples[: whole * self.window].reshape(whole, self.window)
        # ||x - s||^2 = ||x||^2 - 2 x.s + ||s||^2; the first term is the same for every template.
        misfit = self._energy[None, :] - 2 * windows @ self._templates.T
        heard = self._labels[misfit.argmin(axis=1)]
        return [int(c) for c in heard if c != SILENCE], len(samples) - whole * self.window
