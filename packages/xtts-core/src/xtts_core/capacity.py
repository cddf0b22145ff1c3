"""How many streams one batched engine can hold: in memory (its KV pool) and in time (real time).

Memory: a :class:`~xtts_core.batch.BatchDecoder` allocates its KV pool once, keys and values of
``layers x max_streams x heads x max_positions x head_dim`` elements each in the GPT's dtype.
:func:`kv_pool_bytes` computes that from the config alone, and :func:`check_kv_pool` refuses,
with one line naming the numbers and the streams that would fit, a pool larger than the device's
free memory or than a configured budget, before anything is allocated (a worker then fails at
start, not at the first busy minute).

Time: a stream is real time while every decode step (one code each for all streams in the batch)
takes less than the audio one code stands for (1024 samples at 22.05 kHz = 46.4 ms).
:class:`RealtimeCapacity` keeps a rolling average of the measured step time per batch size, fits
``t(B) = a + b * B`` through them and reports the largest batch that stays under a safety share
of that budget, which is what a worker advertises to the balancer.

What it does not do: admission (the balancer leases slots) or any measurement of its own (the
scheduler feeds it the step times).
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from xtts_core._extras import require_inference

require_inference("xtts_core.capacity")

import torch  # noqa: E402

from xtts_core.config import GPTConfig  # noqa: E402
from xtts_core.errors import ParameterError  # noqa: E402

__all__ = [
    "RealtimeCapacity",
    "StepEstimate",
    "check_kv_pool",
    "free_memory",
    "kv_pool_bytes",
    "slot_positions",
]

GIB = 1024**3


def slot_positions(cfg: GPTConfig) -> int:
    """Sequence positions of one decoder slot by default: the longest prompt the model takes
    (conditioning latents, text, start code) plus its code limit."""
    return cfg.num_conditioning_latents + cfg.max_text_tokens + 1 + cfg.max_new_codes


def kv_pool_bytes(
    cfg: GPTConfig, max_streams: int, dtype: torch.dtype, max_positions: int | None = None
) -> int:
    """Bytes of the keys and values a :class:`~xtts_core.batch.BatchDecoder` allocates."""
    positions = max_positions or slot_positions(cfg)
    itemsize = torch.empty((), dtype=dtype).element_size()
    return (
        2 * cfg.layers * max_streams * cfg.heads * positions * (cfg.width // cfg.heads) * itemsize
    )


def free_memory(device: torch.device) -> int:
    """Bytes the device can still give: CUDA's free memory, or the host's available memory
    (``MemAvailable`` of /proc/meminfo; the free pages where there is none)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # in kB
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_kv_pool(
    cfg: GPTConfig, max_streams: int, dtype: torch.dtype, device: torch.device,
    budget_bytes: int | None = None, max_positions: int | None = None,
) -> int:  # fmt: skip
    """The pool's bytes, after checking they fit the device's free memory and ``budget_bytes``.

    Raises:
        ParameterError: the pool does not fit; the message names the sizes, the limit and how
            many streams would fit.
    """
    need = kv_pool_bytes(cfg, max_streams, dtype, max_positions)
    free = free_memory(device)
    limit, what = free, f"{device.type} has {free / GIB:.2f} GiB free"
    if budget_bytes is not None and budget_bytes < limit:
        limit, what = budget_bytes, f"the budget is {budget_bytes / GIB:.2f} GiB"
    if need <= limit:
        return need
    per_stream = kv_pool_bytes(cfg, 1, dtype, max_positions)
    positions = max_positions or slot_positions(cfg)
    itemsize = torch.empty((), dtype=dtype).element_size()
    raise ParameterError(
        f"the KV pool of {max_streams} streams needs {need / GIB:.2f} GiB (2 x {cfg.layers} "
        f"layers x {cfg.heads} heads x {cfg.width // cfg.heads} head dims x {positions} "
        f"positions x {itemsize} bytes = {per_stream / 2**20:.1f} MiB per stream) but {what}: "
        f"at most {limit // per_stream} streams fit"
    )


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
