"""The worker process: load the engine, warm it up, then run jobs from the pipe until told to stop.

What it does: loads one :class:`~xtts_core.engine.XttsEngine` on its device, builds the voice
library (clips of ``voices_dir`` cloned once into a disk cache shared by all workers, named
speakers, the ``ref_file`` default), starts one :class:`~xtts_core.scheduler.BatchScheduler` with
``slots`` stream slots, synthesises ``warmup_text`` once through it, reports :class:`Ready`, and
serves :class:`Job` messages: each is submitted to the scheduler at once (a bad text, language or
parameter fails there, as :class:`JobFailed`, before any work), and a reader thread per job
forwards its chunks as :class:`Chunk` messages as soon as the scheduler makes them. So with
``slots > 1`` the running jobs share every decode step (continuous batching: the weights are read
once per step for all of them); with ``slots = 1`` the same code path runs one job at a time. A
:class:`Cancel` frees the job's stream slot within one decode step. The pipe closing (the front
process died) or a :class:`Stop` ends the process, so a worker never outlives its front process.

What it does not do: protocol, buffering or encoding (the front process does that), or queueing
beyond its slots (the front process leases slots; the scheduler's own FIFO only ever holds jobs
for an instant).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

import torch

from xtts_balancer.worker.ipc import (
    Cancel,
    Chunk,
    Job,
    JobDone,
    JobFailed,
    Ready,
    StartupFailed,
    Stop,
    WorkerConfig,
    WorkerMessage,
)
from xtts_core.chunking import StreamOptions
from xtts_core.engine import XttsEngine
from xtts_core.errors import JobCancelledError, XttsError
from xtts_core.generate import SamplingParams
from xtts_core.scheduler import BatchScheduler, SpeechJob
from xtts_core.voice import Voice

logger = logging.getLogger(__name__)

#: Reference clip formats a voices_dir may hold.
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg")
#: The voice id that always names the default voice.
DEFAULT_VOICE_ID = "default"


def run_worker(conn: Connection, config: WorkerConfig) -> None:
    """Entry point of a spawned worker process (see the module docstring)."""
    logging.basicConfig(
        level=config.log_level,
        format=f"%(asctime)s %(levelname)s [{config.name}] %(name)s: %(message)s",
    )
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
            elif isinstance(message, Cancel):
                runner.cancel(message.job_id)
    finally:
        runner.shutdown()
        logging.shutdown()
        # Skip interpreter teardown (torch's thread pools, gc of the model): seconds on a busy
        # CPU, and nothing is left to flush. The front process waits for this exit on shutdown.
        os._exit(0)


def _start(config: WorkerConfig, sender: _Sender) -> _JobRunner:
    if config.torch_threads is not None:
        torch.set_num_threads(config.torch_threads)
    t0 = time.perf_counter()
    engine = XttsEngine.from_pretrained(
        config.model_dir, config.device, config.dtype, voice_cache_dir=config.voice_cache_dir
    )
    voices = _VoiceLibrary(engine, config)
    runner = _JobRunner(engine, voices, sender, config.slots)
    runner.warm_up(config.warmup_text, config.language)
    logger.info(
        "ready on %s in %.1f s with %d voices", engine.model.device, time.perf_counter() - t0,
        len(voices.ids),
    )  # fmt: skip
    sender.send(Ready(voices.ids, engine.languages, engine.sample_rate, os.getpid()))
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


class _VoiceLibrary:
    """Voice ids -> voices: ``voices_dir`` clips, named speakers and the ``ref_file`` default."""

    def __init__(self, engine: XttsEngine, config: WorkerConfig) -> None:
        self._voices: dict[str, Voice] = {}
        self._engine = engine
        self._config = config
        self._lock = threading.Lock()
        clips = sorted(
            p for p in (config.voices_dir.iterdir() if config.voices_dir else ())
            if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
        )  # fmt: skip
        with _cache_lock(config.voice_cache_dir):  # the first worker clones, the others read
            for clip in clips:
                self._voices[clip.stem] = engine.clone_voice([clip], name=clip.stem)
            if config.ref_file is not None:
                self._voices.setdefault(
                    config.ref_file.stem, engine.clone_voice([config.ref_file], name="ref")
                )
        for name in engine.speakers:
            self._voices.setdefault(name, engine.speaker(name))
        if not self._voices:
            raise RuntimeError(
                "no voices: set model.voices_dir or model.ref_file, or use a checkpoint with "
                "speakers_xtts.pth"
            )
        default = config.ref_file.stem if config.ref_file is not None else next(iter(self._voices))
        self._voices.setdefault(DEFAULT_VOICE_ID, self._voices[default])
        self.ids = tuple(sorted(self._voices))

    def get(self, voice_id: str) -> Voice:
        """The voice; a ``voices_dir`` WAV added since start-up (``POST /v1/voices/add``) is
        cloned on first use. Raises ``KeyError`` for an id with no voice."""
        voice = self._voices.get(voice_id)
        if voice is not None:
            return voice
        directory = self._config.voices_dir
        if directory is None or not voice_id.isalnum():  # an id, never a path
            raise KeyError(voice_id)
        clip = directory / f"{voice_id}.wav"
        if not clip.is_file():
            raise KeyError(voice_id)
        with self._lock, _cache_lock(self._config.voice_cache_dir):
            if voice_id not in self._voices:
                self._voices[voice_id] = self._engine.clone_voice([clip], name=voice_id)
        logger.info("loaded voice %s added since start-up", voice_id)
        return self._voices[voice_id]


@contextmanager
def _cache_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock on the shared voice cache while voices are cloned (one cloner at a time)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _JobRunner:
    """Feeds jobs to one batch scheduler; a reader thread per job forwards its chunks."""

    def __init__(
        self, engine: XttsEngine, voices: _VoiceLibrary, sender: _Sender, slots: int
    ) -> None:
        self._voices = voices
        self._sender = sender
        self._scheduler = BatchScheduler(engine, max_streams=slots)
        self._scheduler.start()
        self._jobs: dict[int, SpeechJob] = {}
        self._readers: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()

    def warm_up(self, text: str, language: str) -> None:
        """One short synthesis, so the first client does not pay for lazy initialisation."""
        voice = self._voices.get(DEFAULT_VOICE_ID)
        options = StreamOptions(first_chunk_codes=2, chunk_codes=4)
        params = SamplingParams(max_new_codes=8, seed=0)
        for _ in self._scheduler.submit(text, language, voice, params, options=options):
            pass

    def submit(self, job: Job) -> None:
        """Queue ``job`` on the scheduler, or answer :class:`JobFailed` at once if it is bad."""
        t0 = time.perf_counter()
        params = SamplingParams(seed=job.seed, max_new_codes=job.max_new_codes)
        try:
            voice = self._voices.get(job.voice_id)
            options = StreamOptions(job.first_chunk_codes, job.chunk_codes, denoise=job.denoise)
            speech = self._scheduler.submit(
                job.text, job.language, voice, params, job.speed, options
            )
        except KeyError:
            self._fail(job.job_id, f"voice {job.voice_id!r} not found", "voice_not_found")
            return
        except XttsError as exc:  # bad text, language, voice clip or parameter
            self._fail(job.job_id, str(exc), "invalid_message")
            return
        except Exception as exc:  # a bug: fail this job, keep the worker serving the others
            logger.error("job %d could not start", job.job_id, exc_info=exc)
            self._fail(job.job_id, f"synthesis failed: {type(exc).__name__}", "internal_error")
            return
        reader = threading.Thread(
            target=self._forward, args=(job.job_id, speech, t0), name=f"job-{job.job_id}",
            daemon=True,
        )  # fmt: skip
        with self._lock:
            self._jobs[job.job_id] = speech
            self._readers[job.job_id] = reader
        reader.start()

    def cancel(self, job_id: int) -> None:
        """Drop a job: the scheduler frees its slot within one step; nothing more is sent."""
        with self._lock:
            speech = self._jobs.get(job_id)
        if speech is not None:
            speech.cancel()

    def shutdown(self) -> None:
        """Close the scheduler (every unfinished job ends cancelled) and join the readers."""
        self._scheduler.close()
        with self._lock:
            readers = list(self._readers.values())
        for reader in readers:
            reader.join()

    def _forward(self, job_id: int, speech: SpeechJob, t0: float) -> None:
        """Reader thread: send the job's chunks as they come, then :class:`JobDone`."""
        codes = 0
        try:
            for chunk in speech:
                codes = chunk.codes_so_far
                if chunk.samples.size:
                    self._sender.send(Chunk(job_id, chunk.samples.tobytes()))
            self._sender.send(JobDone(job_id, codes, time.perf_counter() - t0))
        except JobCancelledError:  # the front asked for it (or the worker is stopping)
            logger.info("job %d cancelled; its stream slot is free", job_id)
        except Exception as exc:  # a bug or a device error: report it, keep serving
            logger.error("job %d failed", job_id, exc_info=exc)
            self._fail(job_id, f"synthesis failed: {type(exc).__name__}", "internal_error")
        finally:
            with self._lock:
                self._jobs.pop(job_id, None)
                self._readers.pop(job_id, None)

    def _fail(self, job_id: int, message: str, error: str) -> None:
        self._sender.send(JobFailed(job_id, message, error))
