"""The worker supervisor: spawn, watch, restart and stop the worker processes.

Each worker is a ``spawn``-context process (a fresh interpreter: no forked torch or CUDA state)
connected by one duplex pipe. A reader thread per worker turns what arrives into calls on the event
loop; the pipe reaching EOF means the process died. Then the jobs it was running fail with a clear
error, its slots leave the pool, and it is restarted after a backoff (doubling, capped at 30 s)
unless it has used up ``workers.max_restarts``. A worker that is not warm within
``workers.startup_timeout_s`` is killed, which restarts it the same way, and so is a warm worker
without jobs that does not answer a :class:`Ping` within ``workers.ping_timeout_s`` (as
uvicorn's supervisor pings its children; a busy worker is watched by ``workers.stall_timeout_s``).
A worker whose backend failed as a whole exits by itself and is restarted. A worker's :class:`Load`
reports (its measured real-time capacity) are kept on its handle and passed to ``on_load``.

:meth:`Supervisor.stop` (Stop message, then SIGTERM, then SIGKILL) runs on every exit path of
the server, and workers exit by themselves when their pipe to this process closes, so no worker
outlives the front process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Literal

from xtts_balancer.worker.ipc import (
    Cancel,
    Chunk,
    GetLatents,
    Job,
    JobDone,
    JobFailed,
    LatentsFound,
    Load,
    Ping,
    Pong,
    Ready,
    StartupFailed,
    Stop,
    WorkerConfig,
    WorkerMessage,
)
from xtts_balancer.worker.main import run_worker

__all__ = ["JobStream", "Supervisor", "WorkerHandle", "WorkerLost"]

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0

WorkerState = Literal["starting", "ready", "dead", "stopped"]


@dataclass(frozen=True)
class WorkerLost:
    """Put on a job's stream when its worker died or was stopped mid-job."""

    message: str


JobEvent = Chunk | JobDone | JobFailed | LatentsFound | WorkerLost


class JobStream:
    """What one job sends back, in order: chunks, then one :class:`JobDone`, :class:`JobFailed`
    or :class:`WorkerLost` (a :class:`GetLatents`: one :class:`LatentsFound`, :class:`JobFailed`
    or :class:`WorkerLost`)."""

    def __init__(self, job: Job | GetLatents) -> None:
        self.job = job
        self._queue: asyncio.Queue[JobEvent] = asyncio.Queue()

    def put(self, event: JobEvent) -> None:
        self._queue.put_nowait(event)

    async def get(self) -> JobEvent:
        return await self._queue.get()


@dataclass(eq=False)
class WorkerHandle:
    """One worker slot in the pool: its current process (incarnation) and bookkeeping."""

    index: int
    config: WorkerConfig
    state: WorkerState = "starting"
    incarnation: int = 0
    restarts: int = 0
    failures: int = 0  # consecutive deaths without becoming ready
    busy: int = 0  # slots leased in this incarnation
    realtime_streams: int | None = None  # measured real-time capacity; None = not reported
    step_s: float | None = None  # mean decode step time of the latest report
    pid: int | None = None
    process: BaseProcess | None = None
    conn: Connection | None = None
    jobs: dict[int, JobStream] = field(default_factory=dict)
    ping: int | None = None  # the unanswered ping's number


class Supervisor:
    """Owns the worker processes; see the module docstring."""

    def __init__(
        self,
        configs: list[WorkerConfig],
        *,
        startup_timeout_s: float,
        restart_backoff_s: float,
        max_restarts: int,
        stop_timeout_s: float,
        on_change: Callable[[], None],
        ping_interval_s: float | None = None,
        ping_timeout_s: float = 10.0,
        on_restart: Callable[[], None],
        on_load: Callable[[WorkerHandle], None] | None = None,
    ) -> None:
        self.workers = [WorkerHandle(i, config) for i, config in enumerate(configs)]
        self._startup_timeout_s = startup_timeout_s
        self._restart_backoff_s = restart_backoff_s
        self._max_restarts = max_restarts
        self._stop_timeout_s = stop_timeout_s
        self._ping_interval_s = ping_interval_s
        self._ping_timeout_s = ping_timeout_s
        self._pings = itertools.count(1)
        self._on_change = on_change
        self._on_restart = on_restart
        self._on_load = on_load
        self._ctx = multiprocessing.get_context("spawn")
        self._job_ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.voices: frozenset[str] = frozenset()
        """Voice ids served: the union of what every worker reported when it became ready, plus
        voices added since, minus voices deleted since (see :meth:`add_voice`)."""
        self._removed_voices: set[str] = set()
        self.languages: frozenset[str] = frozenset()
        self.sample_rate: int | None = None
        self.latent_dims: tuple[int, int] | None = None
        """(GPT width, speaker-embedding size) of the workers' latents; ``None``: they have none."""

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn every worker (they load and warm up in the background)."""
        self._loop = asyncio.get_running_loop()
        for handle in self.workers:
            self._spawn(handle)

    async def stop(self) -> None:
        """Ask every worker to exit, then SIGTERM, then SIGKILL; idempotent."""
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        logger.info("stopping %d workers", len(self.workers))
        await asyncio.gather(*(asyncio.to_thread(self._stop_one, h) for h in self.workers))
        logger.info("workers stopped")

    def stop_now(self) -> None:
        """:meth:`stop` without an event loop (last-resort cleanup on an exit path)."""
        self._stopping = True
        for handle in self.workers:
            self._stop_one(handle)

    def _stop_one(self, handle: WorkerHandle) -> None:
        process, conn = handle.process, handle.conn
        handle.state = "stopped"
        if process is None:
            return
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(Stop())
        process.join(self._stop_timeout_s)
        if process.is_alive():
            logger.warning("worker %d did not stop in time; terminating", handle.index)
            process.terminate()
            process.join(2.0)
        if process.is_alive():
            process.kill()
            process.join()
        if conn is not None:
            conn.close()
        handle.process = handle.conn = None

    # --- spawning and watching -----------------------------------------------------------------

    def _spawn(self, handle: WorkerHandle) -> None:
        handle.incarnation += 1
        handle.state, handle.busy, handle.pid = "starting", 0, None
        handle.realtime_streams = handle.step_s = None  # a new process measures afresh
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=run_worker, args=(child, handle.config), name=handle.config.name, daemon=True
        )
        process.start()
        child.close()  # only the worker holds that end: its death is our EOF
        handle.process, handle.conn = process, parent
        logger.info("worker %d starting (pid %s)", handle.index, process.pid)
        incarnation = handle.incarnation
        threading.Thread(
            target=self._read, args=(handle, parent, incarnation), daemon=True,
            name=f"{handle.config.name}-reader",
        ).start()  # fmt: skip
        self._background(self._startup_watchdog(handle, incarnation))
        if self._ping_interval_s is not None:
            self._background(self._pinger(handle, incarnation, self._ping_interval_s))

    def _read(self, handle: WorkerHandle, conn: Connection, incarnation: int) -> None:
        """Reader thread: forward every message to the loop; EOF means the worker is gone."""
        assert self._loop is not None
        while True:
            try:
                message: WorkerMessage = conn.recv()
            except (EOFError, OSError):
                break
            self._call(self._on_message, handle, incarnation, message)
        self._call(self._on_exit, handle, incarnation)

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_message(self, handle: WorkerHandle, incarnation: int, message: WorkerMessage) -> None:
        if incarnation != handle.incarnation:
            return
        if isinstance(message, Ready):
            handle.state, handle.failures, handle.pid = "ready", 0, message.pid
            # Merged, never replaced: a worker that scanned the library before a voice was added
            # (or deleted) must not hide (or revive) it when it becomes ready afterwards.
            self.voices = (self.voices | frozenset(message.voices)) - self._removed_voices
            self.languages = frozenset(message.languages)
            self.sample_rate = message.sample_rate
            self.latent_dims = message.latent_dims
            logger.info("worker %d ready (pid %d)", handle.index, message.pid)
            self._on_change()
        elif isinstance(message, Pong):
            if handle.ping == message.seq:
                handle.ping = None
        elif isinstance(message, StartupFailed):
            logger.error("worker %d failed to start: %s", handle.index, message.message)
        elif isinstance(message, Load):
            handle.realtime_streams, handle.step_s = message.realtime_streams, message.step_s
            if self._on_load is not None:
                self._on_load(handle)
        else:
            stream = handle.jobs.get(message.job_id)
            if stream is None:  # a cancelled job's last words
                return
            if isinstance(message, JobDone | JobFailed | LatentsFound):
                del handle.jobs[message.job_id]
            stream.put(message)

    def _on_exit(self, handle: WorkerHandle, incarnation: int) -> None:
        if incarnation != handle.incarnation or self._stopping or handle.state == "stopped":
            return
        process = handle.process
        code = process.exitcode if process is not None else None
        if process is not None:
            process.join(1.0)
            code = process.exitcode
        was_ready = handle.state == "ready"
        handle.state = "dead"
        handle.failures += 0 if was_ready else 1
        jobs, handle.jobs = handle.jobs, {}
        for stream in jobs.values():
            stream.put(WorkerLost(f"the worker running this stream died (exit code {code})"))
        if handle.conn is not None:
            handle.conn.close()
        handle.process = handle.conn = None
        self._on_change()
        if handle.restarts >= self._max_restarts:
            logger.error(
                "worker %d died (exit code %s) and has used its %d restarts; leaving it down",
                handle.index, code, self._max_restarts,
            )  # fmt: skip
            return
        delay = min(self._restart_backoff_s * 2 ** max(handle.failures - 1, 0), MAX_BACKOFF_S)
        logger.error(
            "worker %d died (exit code %s, %d jobs failed); restarting in %.1f s",
            handle.index, code, len(jobs), delay,
        )  # fmt: skip
        self._background(self._restart(handle, delay))

    async def _restart(self, handle: WorkerHandle, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._stopping:
            return
        handle.restarts += 1
        self._on_restart()
        self._spawn(handle)

    async def _startup_watchdog(self, handle: WorkerHandle, incarnation: int) -> None:
        await asyncio.sleep(self._startup_timeout_s)
        if handle.incarnation == incarnation and handle.state == "starting" and handle.process:
            logger.error(
                "worker %d not ready after %.0f s; killing it",
                handle.index,
                self._startup_timeout_s,
            )
            handle.process.kill()  # the reader sees EOF and the restart logic takes over

    async def _pinger(self, handle: WorkerHandle, incarnation: int, interval_s: float) -> None:
        """Ping the worker whenever it is warm and has no job; kill it if it does not answer
        within ``ping_timeout_s`` (its death restarts it like any other)."""
        while handle.incarnation == incarnation and not self._stopping:
            await asyncio.sleep(interval_s)
            if handle.incarnation != incarnation:
                return
            if handle.state != "ready" or handle.jobs or handle.conn is None:
                continue
            handle.ping = seq = next(self._pings)
            try:
                handle.conn.send(Ping(seq))
            except (OSError, ValueError):  # dying: its reader sees EOF
                continue
            await asyncio.sleep(self._ping_timeout_s)
            if handle.incarnation == incarnation and handle.ping == seq:
                self.kill(handle, f"no answer to a ping within {self._ping_timeout_s:g} s")
                return

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- voices ----------------------------------------------------------------------------------

    def add_voice(self, voice_id: str) -> None:
        """A voice added to the library (``POST /v1/voices/add``): served from now on."""
        self._removed_voices.discard(voice_id)
        self.voices = self.voices | {voice_id}

    def remove_voice(self, voice_id: str) -> None:
        """A voice deleted from the library: not served, even if a worker that becomes ready
        later still lists it."""
        self._removed_voices.add(voice_id)
        self.voices = self.voices - {voice_id}

    # --- jobs ------------------------------------------------------------------------------------

    def next_job_id(self) -> int:
        return next(self._job_ids)

    def submit(self, handle: WorkerHandle, job: Job | GetLatents) -> JobStream:
        """Send ``job`` (or a :class:`GetLatents`) to ``handle``'s worker; its events arrive on the returned stream."""
        stream = JobStream(job)
        if handle.state != "ready" or handle.conn is None:
            stream.put(WorkerLost("the worker for this stream is not running"))
            return stream
        handle.jobs[job.job_id] = stream
        try:
            handle.conn.send(job)
        except (OSError, ValueError):
            del handle.jobs[job.job_id]
            stream.put(WorkerLost("the worker for this stream is not running"))
        return stream

    def kill(self, handle: WorkerHandle, reason: str) -> None:
        """Kill a hung worker; its death is handled like any other (jobs fail, restart)."""
        if handle.process is not None and handle.process.is_alive():
            logger.error("killing worker %d: %s", handle.index, reason)
            handle.process.kill()

    def cancel(self, handle: WorkerHandle, job_id: int) -> None:
        """Stop a job; whatever it still sends is dropped."""
        if handle.jobs.pop(job_id, None) is not None and handle.conn is not None:
            with contextlib.suppress(OSError, ValueError):
                handle.conn.send(Cancel(job_id))

    @property
    def ready_count(self) -> int:
        return sum(1 for h in self.workers if h.state == "ready")
