"""A deterministic test backend: one short tone per character, no model and no torch.

Each character of a job's text becomes ``ms_per_char / speed`` milliseconds of a sine whose pitch
depends only on the character (whitespace is silence), so a test knows exactly how much audio a
text gives and the same text always gives the same samples. It starts in milliseconds, so
protocol tests (queueing, cancellation, drain, metrics) run fast and without a checkpoint.

``model.backend: tone`` selects it; ``model.backend_options`` may set ``ms_per_char`` (default
50) and ``realtime_factor`` (default 0: as fast as possible; 1.0 makes each character take its
own duration to "compute", so a job is still running when a test acts on it). Voices: ``default``
plus the stems of the ``voices_dir`` clips, and a clip added later is found on use, as with XTTS.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xtts_balancer.backends.base import (
    DEFAULT_VOICE_ID,
    Backend,
    JobRejectedError,
    Synthesis,
    added_clip,
    library_clips,
)
from xtts_balancer.worker.ipc import Job, WorkerConfig

__all__ = ["ToneBackend", "ToneOptions", "tone_frequency"]

SAMPLE_RATE = 24000
AMPLITUDE = 0.2


class ToneOptions(BaseModel):
    """``model.backend_options`` of the tone backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ms_per_char: float = Field(default=50.0, gt=0, le=1000)
    realtime_factor: float = Field(default=0.0, ge=0, le=10)


def tone_frequency(char: str) -> float:
    """The pitch of ``char``'s tone in Hz (0 for whitespace: silence)."""
    return 0.0 if char.isspace() else 200.0 + (ord(char) % 64) * 12.5


class ToneBackend(Backend):
    """See the module docstring."""

    name = "tone"
    sample_rate = SAMPLE_RATE

    def __init__(self, config: WorkerConfig, options: ToneOptions) -> None:
        self._config = config
        self._options = options
        self._voices = {DEFAULT_VOICE_ID, *(c.stem for c in library_clips(config.voices_dir))}
        self._running: set[_ToneSynthesis] = set()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, config: WorkerConfig) -> Backend:
        try:
            options = ToneOptions.model_validate(dict(config.backend_options))
        except ValidationError as exc:
            raise ValueError(f"model.backend_options for the tone backend: {exc}") from None
        return cls(config, options)

    def voices(self) -> tuple[str, ...]:
        return tuple(sorted(self._voices))

    def submit(self, job: Job) -> Synthesis:
        if job.voice_id not in self._voices:
            if added_clip(self._config.voices_dir, job.voice_id) is None:
                raise JobRejectedError(f"voice {job.voice_id!r} not found", "voice_not_found")
            self._voices.add(job.voice_id)
        if not job.text.strip():
            raise JobRejectedError("text is empty", "invalid_message")
        if job.latents is not None:
            raise JobRejectedError("the tone backend has no speaker latents", "invalid_message")
        seconds = self._options.ms_per_char / job.speed / 1000
        synthesis = _ToneSynthesis(
            job.text, round(SAMPLE_RATE * seconds), seconds * self._options.realtime_factor,
            self._finished,
        )  # fmt: skip
        with self._lock:
            self._running.add(synthesis)
        return synthesis

    def close(self) -> None:
        with self._lock:
            running, self._running = self._running, set()
        for synthesis in running:
            synthesis.cancel()

    def _finished(self, synthesis: _ToneSynthesis) -> None:
        with self._lock:
            self._running.discard(synthesis)


class _ToneSynthesis(Synthesis):
    """One chunk per character; checks for cancellation between them."""

    def __init__(
        self, text: str, samples_per_char: int, delay_s: float,
        on_finish: Callable[[_ToneSynthesis], None],
    ) -> None:  # fmt: skip
        self._text = text
        self._samples = samples_per_char
        self._delay_s = delay_s
        self._on_finish = on_finish
        self._cancelled = threading.Event()

    def __iter__(self) -> Iterator[NDArray[np.float32]]:
        t = np.arange(self._samples) / SAMPLE_RATE
        try:
            for char in self._text:
                if self._cancelled.wait(self._delay_s):
                    return
                chunk = AMPLITUDE * np.sin(2 * np.pi * tone_frequency(char) * t)
                self.codes += 1
                yield chunk.astype(np.float32)
        finally:
            self._on_finish(self)

    def cancel(self) -> None:
        self._cancelled.set()
