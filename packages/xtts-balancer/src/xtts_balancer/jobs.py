"""The steps every speech request takes, whichever door it came in by (websocket or HTTP).

:func:`admit_key` checks an API key and counts the caller's open sessions; :func:`acquire_slot`
takes a worker slot from the :class:`~xtts_balancer.pool.SlotPool` (FIFO queue, metrics);
:func:`new_job` builds one segment's :class:`~xtts_balancer.worker.ipc.Job` from the settings;
:func:`job_events` runs it on the leased worker and yields its chunks, then its
:class:`~xtts_balancer.worker.ipc.JobDone`; :func:`find_latents` asks the leased worker for a
voice's latents (or a clip's) the same way. A job that sends nothing for
``workers.stall_timeout_s`` gets its worker killed (a hung worker); a failure is a
:class:`~xtts_balancer.errors.SessionError`; leaving early cancels the job at the worker, so use
it inside :func:`contextlib.aclosing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator

from xtts_balancer.errors import SessionError
from xtts_balancer.pool import Lease, NoCapacityError
from xtts_balancer.state import BalancerState
from xtts_balancer.supervisor import WorkerLost
from xtts_balancer.worker.ipc import (
    Chunk,
    GetLatents,
    Job,
    JobDone,
    JobFailed,
    Latents,
    LatentsFound,
)
from xtts_core.aio import wait_within
from xtts_core.protocol import CloseCode, ErrorCode

__all__ = [
    "acquire_slot",
    "admit_key",
    "find_latents",
    "job_events",
    "new_job",
    "record_segment",
]


def admit_key(state: BalancerState, key: str | None, identity: str | None = None) -> str:
    """The identity of a valid ``key`` (or the given ``identity``: a single-use token's) after
    counting one more session for it; the caller gives it back with
    ``state.key_sessions[identity] -= 1``.

    Raises:
        SessionError: no or a wrong key, or the key's session limit is reached.
    """
    if identity is None:
        identity = state.auth.check(key)
    limit = state.settings.auth.max_sessions_per_key
    if limit is not None and state.key_sessions[identity] >= limit:
        raise SessionError(
            f"Too many concurrent sessions for this API key (limit {limit}).",
            ErrorCode.TOO_MANY_CONCURRENT_REQUESTS,
        )
    state.key_sessions[identity] += 1
    return identity


async def acquire_slot(state: BalancerState) -> Lease:
    """A worker slot, now or after waiting in the queue.

    Raises:
        SessionError: (close 1013) ``system_busy`` when the queue is full,
            ``too_many_concurrent_requests`` when every slot stayed busy (the wait timed out,
            or ``queue.max_queue`` is 0).
    """
    metrics = state.metrics
    t0 = time.monotonic()
    metrics.queue_length.inc()
    try:
        lease = await state.pool.acquire()
    except NoCapacityError as exc:
        error = ErrorCode.SYSTEM_BUSY if exc.queue_full else ErrorCode.TOO_MANY_CONCURRENT_REQUESTS
        raise SessionError(str(exc), error, CloseCode.TRY_AGAIN_LATER) from None
    finally:
        metrics.queue_length.dec()
    metrics.queue_wait.observe(time.monotonic() - t0)
    return lease


def new_job(
    state: BalancerState, text: str, *, language: str, voice_id: str, speed: float,
    seed: int | None, chunk_codes: int | None = None, normalize: bool = True,
    latents: Latents | None = None,
) -> Job:  # fmt: skip
    """One segment's job with the model and stream settings filled in (``normalize`` off: the
    worker speaks numbers, abbreviations and symbols as written; spoken with ``latents`` instead
    of ``voice_id``'s when they are given)."""
    settings = state.settings
    return Job(
        job_id=state.supervisor.next_job_id(), text=text, language=language, voice_id=voice_id,
        speed=speed, seed=seed, max_new_codes=settings.model.max_new_codes,
        first_chunk_codes=settings.stream.first_chunk_codes,
        chunk_codes=chunk_codes or settings.stream.chunk_codes,
        denoise=settings.model.noise_reduction, normalize=normalize, latents=latents,
    )  # fmt: skip


async def job_events(
    state: BalancerState, lease: Lease, job: Job | GetLatents
) -> AsyncGenerator[Chunk | JobDone | LatentsFound, None]:
    """Run ``job`` on ``lease``'s worker: its chunks, then its :class:`JobDone` (a
    :class:`GetLatents`: its :class:`LatentsFound`; see the module docstring)."""
    supervisor, worker = state.supervisor, lease.worker
    stall_s = state.settings.workers.stall_timeout_s
    events = supervisor.submit(worker, job)
    finished = False
    try:
        while True:
            # Not asyncio.wait_for (see xtts_core.aio): a session that cancelled its generator
            # (a client error mid-stream) just as an event arrived waited for it forever.
            try:
                event = await wait_within(events.get(), stall_s)
            except asyncio.TimeoutError:
                supervisor.kill(worker, f"job {job.job_id} sent nothing for {stall_s:g} s")
                continue  # the worker's death arrives as WorkerLost
            if isinstance(event, Chunk):
                yield event
                continue
            finished = True
            if isinstance(event, JobDone | LatentsFound):
                yield event
                return
            if isinstance(event, JobFailed):
                code = (
                    CloseCode.INTERNAL_ERROR
                    if event.error in (ErrorCode.INTERNAL_ERROR, ErrorCode.WORKER_FAILED)
                    else CloseCode.POLICY_VIOLATION
                )
                raise SessionError(event.message, event.error, code)
            assert isinstance(event, WorkerLost)
            raise SessionError(
                f"Synthesis failed: {event.message}. Please retry.",
                ErrorCode.WORKER_FAILED, CloseCode.INTERNAL_ERROR,
            )  # fmt: skip
    finally:
        if not finished:
            supervisor.cancel(worker, job.job_id)


async def find_latents(
    state: BalancerState, lease: Lease, voice_id: str, clip: bytes | None = None
) -> Latents:
    """The latents of ``voice_id`` (or of the audio file ``clip``) from ``lease``'s worker.

    Raises:
        SessionError: no such voice, a clip that is not audio, or the worker failed.
    """
    request = GetLatents(state.supervisor.next_job_id(), voice_id, clip)
    events = job_events(state, lease, request)
    async with contextlib.aclosing(events):
        async for event in events:
            if isinstance(event, LatentsFound):
                return event.latents
    raise SessionError("The worker sent no latents.", ErrorCode.INTERNAL_ERROR)


def record_segment(
    state: BalancerState, done: JobDone, *, started: float, first_audio_s: float | None,
    audio_ms: float,
) -> None:  # fmt: skip
    """Account one finished segment: its real-time factor (compute time / audio duration) in the
    metrics and a line in the generation log. ``started`` is the ``time.monotonic()`` of its
    dispatch; ``first_audio_s`` how long its first audio took to leave (``None``: none did)."""
    rtf = done.seconds / (audio_ms / 1000) if audio_ms else 0.0
    if audio_ms:
        state.metrics.real_time_factor.observe(rtf)
    state.generation_log.write(
        time_to_first_audio=first_audio_s or 0.0, real_time_factor=rtf,
        latency=time.monotonic() - started, audio_ms=audio_ms, codes=done.codes,
    )  # fmt: skip
