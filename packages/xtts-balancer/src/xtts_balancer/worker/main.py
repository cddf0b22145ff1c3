"""The worker process: load a backend, warm it up, then run jobs from the pipe until told to stop.

What it does: loads the :class:`~xtts_balancer.backends.base.Backend` that ``model.backend``
names (XTTS by default), runs ``warmup_text`` through it once with the default voice, reports
:class:`Ready` with the backend's voices, languages and sample rate, and serves :class:`Job`
messages: each is submitted to the backend at once (a bad voice, text or parameter fails there,
as :class:`JobFailed`, before any work), and a reader thread per job forwards its chunks as
:class:`Chunk` messages as soon as the backend makes them, then :class:`JobDone`. A
:class:`GetLatents` is answered from a thread of its own (cloning a clip takes a while) with
:class:`LatentsFound` or :class:`JobFailed`. A
:class:`Cancel` stops the job and nothing more is sent for it; a :class:`Ping` is answered with a
:class:`Pong` at once. A job's own failure is that job's :class:`JobFailed`; a
:class:`~xtts_balancer.backends.base.BackendFailedError` (the backend can serve no more, e.g. a
device error in the batch scheduler) fails the job and ends the process with
:data:`EXIT_BACKEND_FAILED`, so the supervisor restarts it. The pipe closing (the front process
died) or a :class:`Stop` ends the process, so a worker never outlives its front process. A
reporter thread sends a :class:`Load` whenever the backend's measured real-time capacity changes
(checked every :data:`LOAD_INTERVAL_S`).

What it does not do: speech (the backend does that), protocol, buffering or encoding (the front
process does that), or queueing beyond its slots (the front process leases slots).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

import numpy as np

from xtts_balancer.backends import backend_class
from xtts_balancer.backends.base import (
    DEFAULT_VOICE_ID,
    Backend,
    BackendFailedError,
    JobRejectedError,
    Synthesis,
)
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
from xtts_core.logs import configure_logging

__all__ = ["run_worker"]

logger = logging.getLogger(__name__)

#: How often the reporter thread looks at the backend's load.
LOAD_INTERVAL_S = 0.25
#: Exit status of a worker whose backend failed as a whole (the supervisor restarts it).
EXIT_BACKEND_FAILED = 70


def _exit_backend_failed(exc: BackendFailedError) -> None:
    logger.critical("the backend failed and serves no more (%s); exiting to be restarted", exc)
    logging.shutdown()
    os._exit(EXIT_BACKEND_FAILED)


def run_worker(conn: Connection, config: WorkerConfig) -> None:
    """Entry point of a spawned worker process (see the module docstring)."""
    configure_logging(
        config.log_level, "json" if config.log_format == "json" else "text",
        f"%(asctime)s %(levelname)s [{config.name}] %(name)s: %(message)s", worker=config.name,
    )  # fmt: skip
    sender = _Sender(conn)
    try:
        runner = _start(config, sender)
    except Exception as exc:  # any failure to start is reported, then the process exits
        logger.exception("startup failed")
        sender.send(StartupFailed(f"{type(exc).__name__}: {exc}"))
        return
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the front process is gone: never outlive it
                logger.warning("pipe to the front process closed; exiting")
                break
            if isinstance(message, Stop):
                break
            if isinstance(message, Job):
                runner.submit(message)
            elif isinstance(message, GetLatents):
                runner.find_latents(message)
            elif isinstance(message, Cancel):
                runner.cancel(message.job_id)
            elif isinstance(message, Ping):
                sender.send(Pong(message.seq))
    finally:
        runner.shutdown()
        logging.shutdown()
        # Skip interpreter teardown (torch's thread pools, gc of the model): seconds on a busy
        # CPU, and nothing is left to flush. The front process waits for this exit on shutdown.
        os._exit(0)


def _start(config: WorkerConfig, sender: _Sender) -> _JobRunner:
    t0 = time.perf_counter()
    backend = backend_class(config.backend).load(config)
    voices = backend.voices()
    if DEFAULT_VOICE_ID not in voices:
        raise RuntimeError(f"backend {config.backend!r} serves no {DEFAULT_VOICE_ID!r} voice")
    runner = _JobRunner(backend, sender)
    runner.warm_up(config.warmup_text, config.language)
    logger.info(
        "%s backend ready in %.1f s with %d voices", backend.name, time.perf_counter() - t0,
        len(voices),
    )  # fmt: skip
    sender.send(
        Ready(voices, backend.languages, backend.sample_rate, os.getpid(), backend.latent_dims)
    )
    runner.start_reporting()
    return runner


class _Sender:
    """The pipe's sending end, shared by the job threads (a send is not thread-safe)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, message: WorkerMessage) -> None:
        with self._lock:
            try:
                self._conn.send(message)
            except (BrokenPipeError, EOFError, OSError):  # front gone: the main loop exits too
                logger.warning("cannot send to the front process")


class _JobRunner:
    """Feeds jobs to the backend; a reader thread per job forwards its chunks."""

    def __init__(
        self, backend: Backend, sender: _Sender,
        on_fatal: Callable[[BackendFailedError], None] = _exit_backend_failed,
    ) -> None:  # fmt: skip
        self._backend = backend
        self._sender = sender
        self._on_fatal = on_fatal
        self._jobs: dict[int, Synthesis] = {}
        self._readers: dict[int, threading.Thread] = {}
        self._cancelled: set[int] = set()
        self._closing = False
        self._lock = threading.Lock()
        self._stop_reporting = threading.Event()
        self._reporter = threading.Thread(target=self._report, name="load-reporter", daemon=True)

    def warm_up(self, text: str, language: str) -> None:
        """One short synthesis, so the first client does not pay for lazy initialisation."""
        job = Job(
            job_id=0, text=text, language=language, voice_id=DEFAULT_VOICE_ID, speed=1.0, seed=0,
            max_new_codes=8, first_chunk_codes=2, chunk_codes=4, denoise=False,
        )  # fmt: skip
        for _ in self._backend.submit(job):
            pass

    def submit(self, job: Job) -> None:
        """Start ``job`` on the backend, or answer :class:`JobFailed` at once if it is bad."""
        t0 = time.perf_counter()
        try:
            synthesis = self._backend.submit(job)
        except JobRejectedError as exc:
            self._fail(job.job_id, exc.message, exc.error)
            return
        except BackendFailedError as exc:
            self._fail(job.job_id, "synthesis failed: the worker is restarting", "worker_failed")
            self._on_fatal(exc)
            return
        except Exception as exc:  # a bug: fail this job, keep the worker serving the others
            logger.error("job %d could not start", job.job_id, exc_info=exc)
            self._fail(job.job_id, f"synthesis failed: {type(exc).__name__}", "internal_error")
            return
        reader = threading.Thread(
            target=self._forward, args=(job.job_id, synthesis, t0), name=f"job-{job.job_id}",
            daemon=True,
        )  # fmt: skip
        with self._lock:
            self._jobs[job.job_id] = synthesis
            self._readers[job.job_id] = reader
        reader.start()

    def find_latents(self, request: GetLatents) -> None:
        """Answer ``request`` from a thread of its own: :class:`LatentsFound` or
        :class:`JobFailed`."""
        threading.Thread(
            target=self._find_latents, args=(request,), name=f"latents-{request.job_id}",
            daemon=True,
        ).start()  # fmt: skip

    def _find_latents(self, request: GetLatents) -> None:
        try:
            latents = self._backend.latents(request.voice_id, request.clip)
        except JobRejectedError as exc:
            self._fail(request.job_id, exc.message, exc.error)
            return
        except Exception as exc:  # a bug: fail this request, keep the worker serving
            logger.error("latents of request %d failed", request.job_id, exc_info=exc)
            self._fail(request.job_id, f"latents failed: {type(exc).__name__}", "internal_error")
            return
        self._sender.send(LatentsFound(request.job_id, latents))

    def cancel(self, job_id: int) -> None:
        """Drop a job: the backend stops it soon; nothing more is sent for it."""
        with self._lock:
            synthesis = self._jobs.get(job_id)
            if synthesis is not None:
                self._cancelled.add(job_id)
        if synthesis is not None:
            synthesis.cancel()

    def start_reporting(self) -> None:
        """Start the thread that sends a :class:`Load` whenever the backend's changes."""
        self._reporter.start()

    def _report(self) -> None:
        last: Load | None = None
        while not self._stop_reporting.wait(LOAD_INTERVAL_S):
            load = self._backend.realtime_load()
            if load is not None and load != last:
                self._sender.send(load)
                last = load

    def shutdown(self) -> None:
        """Close the backend (every unfinished job ends) and join the readers."""
        self._stop_reporting.set()
        with self._lock:
            self._closing = True
        self._backend.close()
        with self._lock:
            readers = list(self._readers.values())
        for reader in readers:
            reader.join()

    def _dropped(self, job_id: int) -> bool:
        with self._lock:
            return self._closing or job_id in self._cancelled

    def _forward(self, job_id: int, synthesis: Synthesis, t0: float) -> None:
        """Reader thread: send the job's chunks as they come, then :class:`JobDone`."""
        try:
            for samples in synthesis:
                if self._dropped(job_id):
                    break
                if samples.size:
                    pcm = np.ascontiguousarray(samples, np.float32)  # whatever it yielded
                    self._sender.send(Chunk(job_id, pcm.tobytes()))
            if not self._dropped(job_id):
                self._sender.send(JobDone(job_id, synthesis.codes, time.perf_counter() - t0))
                return
        except BackendFailedError as exc:  # nothing more can be served: restart the worker
            self._fail(job_id, "synthesis failed: the worker is restarting", "worker_failed")
            self._on_fatal(exc)
            return
        except Exception as exc:  # this job's own failure: report it, keep serving the others
            if not self._dropped(job_id):
                logger.error("job %d failed", job_id, exc_info=exc)
                self._fail(job_id, f"synthesis failed: {type(exc).__name__}", "internal_error")
                return
        finally:
            with self._lock:
                self._jobs.pop(job_id, None)
                self._readers.pop(job_id, None)
                self._cancelled.discard(job_id)
        logger.info("job %d cancelled; its stream slot is free", job_id)

    def _fail(self, job_id: int, message: str, error: str) -> None:
        self._sender.send(JobFailed(job_id, message, error))
