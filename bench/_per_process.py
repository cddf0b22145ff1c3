"""The original system's design for ``bench_batch.py``: one worker process per stream.

Why: the system we replace runs a pool of worker processes, each holding its own model and serving
one stream at a time (``shared/spec/original-spec.md``). N clients that arrive together get N
processes, each decoding alone. This starts N such workers (``spawn``, one torch thread each, as
the pool pins them), lets them load and warm up, releases them together through a barrier and
collects, per stream, the time to its first audio and to its end, both from the release.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import re
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import torch

from xtts_core.chunking import StreamOptions
from xtts_core.engine import XttsEngine
from xtts_core.generate import SamplingParams

#: Seconds the parent waits for every worker to load, and then for every stream to end.
LOAD_TIMEOUT_S = 900.0
STREAM_TIMEOUT_S = 1800.0


def resident_peak() -> int | None:
    """This process's resident-set high-water mark in bytes (Linux ``VmHWM``), or None.

    Not ``getrusage``'s ``ru_maxrss``: that survives ``exec``, so a spawned worker would report
    its parent's peak whenever the parent was the larger.
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(found.group(1)) * 1024 if found else None


@dataclass(frozen=True)
class WorkerResult:
    """What one worker reports: seconds from the release, its audio, its peak memory."""

    load_s: float
    first_s: float
    end_s: float
    audio_s: float
    peak_bytes: int


@dataclass(frozen=True)
class ProcessRun:
    """Every worker's result, in the order they reported."""

    workers: list[WorkerResult]

    @property
    def peak_bytes(self) -> int:
        """Sum of the workers' peaks: what the pool holds at once."""
        return sum(w.peak_bytes for w in self.workers)


def serve_one(
    checkpoint: Path, device: str, dtype: str, text: str, speaker: str, codes: int,
    barrier: Barrier, results: Queue[WorkerResult],
) -> None:  # fmt: skip
    """One worker: load, warm up, wait for the others, stream ``text`` once and report."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    engine = XttsEngine.from_pretrained(checkpoint, device=device, dtype=dtype)
    voice = engine.speaker(speaker)
    load_s = time.perf_counter() - started
    warm = SamplingParams(seed=0, min_new_codes=8, max_new_codes=8)
    for _ in engine.stream(text, "en", voice, warm, split_text=False):
        pass
    if device.startswith("cuda"):  # the weights stay in the peak: they are allocated
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    params = SamplingParams(seed=0, min_new_codes=codes, max_new_codes=codes)
    barrier.wait()
    t0 = time.perf_counter()
    first = 0.0
    samples = 0
    chunks = engine.stream(text, "en", voice, params, options=StreamOptions(), split_text=False)
    for chunk in chunks:  # the samples are on the host: the device has finished them
        if chunk.samples.size and not first:
            first = time.perf_counter() - t0
        samples += chunk.samples.size
    end = time.perf_counter() - t0
    on_cuda = device.startswith("cuda")
    peak = torch.cuda.max_memory_allocated() if on_cuda else resident_peak() or 0
    results.put(WorkerResult(load_s, first, end, samples / engine.sample_rate, peak))


def one_stream_per_process(
    checkpoint: Path, device: str, dtype: str, text: str, speaker: str, n: int, codes: int
) -> ProcessRun:
    """Run ``n`` workers of :func:`serve_one` released together; raises if any of them dies."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(n + 1)  # the workers and this process: the release waits for all
    results: Queue[WorkerResult] = ctx.Queue()
    args = (checkpoint, device, dtype, text, speaker, codes, barrier, results)
    workers = [ctx.Process(target=serve_one, args=args, daemon=True) for _ in range(n)]
    for worker in workers:
        worker.start()

    def check(deadline: float, doing: str) -> None:
        died = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
        if died or time.monotonic() > deadline:
            why = f"exit codes {died}" if died else "timed out"
            raise RuntimeError(f"one-stream workers failed while {doing}: {why}")

    try:
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while barrier.n_waiting < n:
            check(deadline, "loading")
            time.sleep(0.2)
        barrier.wait()
        deadline = time.monotonic() + STREAM_TIMEOUT_S
        reports: list[WorkerResult] = []
        while len(reports) < n:
            try:
                reports.append(results.get(timeout=1.0))
            except queue_mod.Empty:
                check(deadline, "streaming")
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.terminate()
    return ProcessRun(reports)
