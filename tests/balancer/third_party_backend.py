"""A third-party backend, loaded by import path (``third_party_backend:ConstantBackend``).

It lives outside the package on purpose: the test proves that ``model.backend`` accepts any
importable :class:`~xtts_balancer.backends.base.Backend` subclass. Every character becomes
``SAMPLES_PER_CHAR`` samples of the constant ``LEVEL``, so a test can recognise its audio.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from xtts_balancer.backends.base import DEFAULT_VOICE_ID, Backend, JobRejectedError, Synthesis
from xtts_balancer.worker.ipc import Job, WorkerConfig

SAMPLE_RATE = 16000
SAMPLES_PER_CHAR = 160
LEVEL = 0.25


class ConstantBackend(Backend):
    name = "constant"
    sample_rate = SAMPLE_RATE
    languages = ("en",)

    @classmethod
    def load(cls, config: WorkerConfig) -> Backend:
        return cls()

    def voices(self) -> tuple[str, ...]:
        return (DEFAULT_VOICE_ID, "narrator")

    def submit(self, job: Job) -> Synthesis:
        if job.voice_id not in self.voices():
            raise JobRejectedError(f"voice {job.voice_id!r} not found", "voice_not_found")
        return _Constant(len(job.text))

    def close(self) -> None:
        """Nothing runs in the background."""


class _Constant(Synthesis):
    def __init__(self, chars: int) -> None:
        self._chars = chars

    def __iter__(self) -> Iterator[NDArray[np.float32]]:
        yield np.full(self._chars * SAMPLES_PER_CHAR, LEVEL, np.float32)

    def cancel(self) -> None:
        """One chunk only: nothing to stop."""
