"""How many streams one batched engine can hold in time: the largest batch that stays real time.

A stream is real time while every decode step (one code each for all streams in the batch)
takes less than the audio one code stands for (1024 samples at 22.05 kHz = 46.4 ms).
:class:`RealtimeCapacity` keeps a rolling average of the measured step time per batch size, fits
``t(B) = a + b * B`` through them and reports the largest batch that stays under a safety share
of that budget, which is what a worker advertises to the balancer. How many fit in memory is the
KV pool's question (:func:`xtts_core.kv_cache.check_kv_pool`).

What it does not do: admission (the balancer leases slots) or any measurement of its own (the
scheduler feeds it the step times).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

from xtts_core.errors import ParameterError

__all__ = ["RealtimeCapacity", "StepEstimate"]


@dataclass(frozen=True)
class StepEstimate:
    """What :meth:`RealtimeCapacity.estimate` reports."""

    streams: int
    """Largest batch whose steps stay real time (at least 1: a worker always takes one)."""
    step_s: float
    """Mean measured step time at the most recent batch size."""


class RealtimeCapacity:
    """Rolling step times per batch size -> the largest real-time batch (see the module doc).

    ``budget_s`` is the audio one code stands for; a step may take ``safety`` of it. Thread-safe:
    the scheduler's thread records, any thread estimates.
    """

    def __init__(
        self, max_streams: int, budget_s: float, safety: float = 0.8, window: int = 64
    ) -> None:
        if not 0 < safety <= 1:
            raise ParameterError(f"safety must be in (0, 1], got {safety}")
        self.max_streams = max_streams
        self.limit_s = budget_s * safety
        self._window = window
        self._times: dict[int, deque[float]] = {}
        self._last = 0
        self._lock = threading.Lock()

    def record(self, batch: int, seconds: float) -> None:
        """One step that drew a code for ``batch`` streams took ``seconds`` (vocoding included)."""
        with self._lock:
            self._times.setdefault(batch, deque(maxlen=self._window)).append(seconds)
            self._last = batch

    def estimate(self) -> StepEstimate | None:
        """The current estimate; None before the first step."""
        with self._lock:
            if not self._times:
                return None
            means = {b: sum(t) / len(t) for b, t in self._times.items()}
            last = means[self._last]
        a, b = _fit(means)
        if b <= 0:
            streams = self.max_streams if a <= self.limit_s else 1
        else:
            streams = math.floor((self.limit_s - a) / b)
        return StepEstimate(max(1, min(self.max_streams, streams)), last)


def _fit(means: dict[int, float]) -> tuple[float, float]:
    """``t(B) = a + b * B`` by least squares over the mean step time of each batch size. With one
    size only, the pessimistic ``t(B) = t(B0) * B / B0`` (steps as if nothing were shared), so
    capacity grows as larger batches are measured rather than being promised before."""
    if len(means) == 1:
        ((size, mean),) = means.items()
        return 0.0, mean / size
    n = len(means)
    mx = sum(means) / n
    my = sum(means.values()) / n
    sxx = sum((x - mx) ** 2 for x in means)
    slope = sum((x - mx) * (y - my) for x, y in means.items()) / sxx
    slope = max(slope, 0.0)  # noise must not promise that bigger batches are faster
    return my - slope * mx, slope
