"""The XTTS backend: one :class:`~xtts_core.engine.XttsEngine` and its batch scheduler.

What it does: loads the engine on the worker's device, builds the voice library (clips of
``voices_dir`` cloned once into a disk cache shared by all workers, named speakers, the
``ref_file`` default) and starts one :class:`~xtts_core.scheduler.BatchScheduler` with ``slots``
stream slots. Each job is submitted to the scheduler at once (a bad text, language or parameter
is refused there, before any work), so with ``slots > 1`` the running jobs share every decode
step (continuous batching: the weights are read once per step for all of them); with
``slots = 1`` the same code path runs one job at a time. A cancel frees the job's stream slot
within one decode step.

Before the scheduler allocates its KV pool, the pool's size is checked against the device's free
memory and ``workers.kv_pool_bytes``; a pool that does not fit fails the worker's start with the
numbers and the streams that would fit. The scheduler times its steps, and
:meth:`XttsBackend.realtime_load` reports how many streams stay faster than real time.

What it does not do: queueing beyond its slots (the front process leases slots; the scheduler's
own FIFO only ever holds jobs for an instant).
"""

from __future__ import annotations

import fcntl
import logging
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from xtts_balancer.backends.base import (
    DEFAULT_VOICE_ID,
    Backend,
    BackendFailedError,
    JobRejectedError,
    Synthesis,
    added_clip,
    library_clips,
)
from xtts_balancer.worker.ipc import Job, Latents, Load, WorkerConfig
from xtts_core.chunking import StreamOptions
from xtts_core.engine import XttsEngine
from xtts_core.errors import JobCancelledError, ParameterError, XttsError
from xtts_core.generate import SamplingParams
from xtts_core.scheduler import BatchScheduler, SchedulerFailedError, SpeechJob
from xtts_core.voice import Voice

__all__ = ["XttsBackend"]

logger = logging.getLogger(__name__)


class XttsBackend(Backend):
    """XTTS-v2 (see the module docstring); ``model.backend: xtts``, the default."""

    name = "xtts"
    latent_dims: tuple[int, int]

    def __init__(self, engine: XttsEngine, config: WorkerConfig) -> None:
        self._engine = engine
        self._library = _VoiceLibrary(engine, config)
        try:
            self._scheduler = BatchScheduler(
                engine, max_streams=config.slots, memory_budget=config.kv_pool_bytes,
                realtime_safety=config.realtime_safety, cuda_graphs=config.cuda_graphs,
            )  # fmt: skip
        except ParameterError as exc:
            raise ValueError(
                f"workers.slots_per_worker: {config.slots} do not fit: {exc}"
            ) from None
        self._scheduler.start()
        self.sample_rate = engine.sample_rate
        self.languages = tuple(engine.languages)
        self.latent_dims = (engine.config.gpt.width, engine.config.decoder.d_vector_dim)

    @classmethod
    def load(cls, config: WorkerConfig) -> Backend:
        if config.backend_options:
            raise ValueError(
                "the xtts backend takes no model.backend_options; got "
                + ", ".join(sorted(config.backend_options))
            )
        if config.model_dir is None:
            raise ValueError("the xtts backend needs model.directory")
        if config.torch_threads is not None:
            torch.set_num_threads(config.torch_threads)
        engine = XttsEngine.from_pretrained(
            config.model_dir, config.device, config.dtype, voice_cache_dir=config.voice_cache_dir
        )
        logger.info("XTTS loaded on %s", engine.model.device)
        return cls(engine, config)

    def voices(self) -> tuple[str, ...]:
        return self._library.ids

    def submit(self, job: Job) -> Synthesis:
        params = SamplingParams(seed=job.seed, max_new_codes=job.max_new_codes)
        if job.latents is not None:
            voice = self._voice_of(job.latents)
        else:
            try:
                voice = self._library.get(job.voice_id)
            except KeyError:
                raise JobRejectedError(
                    f"voice {job.voice_id!r} not found", "voice_not_found"
                ) from None
        options = StreamOptions(job.first_chunk_codes, job.chunk_codes, denoise=job.denoise)
        try:
            speech = self._scheduler.submit(
                job.text, job.language, voice, params, job.speed, options, normalize=job.normalize
            )
        except XttsError as exc:  # bad text, language, voice clip or parameter
            raise JobRejectedError(str(exc), "invalid_message") from None
        except SchedulerFailedError as exc:
            raise BackendFailedError(str(exc)) from exc
        return _XttsSynthesis(speech)

    def latents(self, voice_id: str, clip: bytes | None) -> Latents:
        if clip is None:
            try:
                voice = self._library.get(voice_id)
            except KeyError:
                raise JobRejectedError(f"voice {voice_id!r} not found", "voice_not_found") from None
        else:
            with tempfile.NamedTemporaryFile(suffix=".audio") as file:  # the cloner reads paths
                file.write(clip)
                file.flush()
                try:
                    voice = self._engine.clone_voice([file.name], name="clip")
                except XttsError as exc:  # not audio, too short, silent
                    message = str(exc).replace(file.name, "the clip")
                    raise JobRejectedError(message, "invalid_message") from None
        latent = voice.gpt_cond_latent.detach().float().cpu().reshape(-1, self.latent_dims[0])
        embedding = voice.speaker_embedding.detach().float().cpu().reshape(-1)
        return Latents(
            latent.numpy().astype("<f4").tobytes(), latent.shape[0],
            embedding.numpy().astype("<f4").tobytes(),
        )  # fmt: skip

    def _voice_of(self, latents: Latents) -> Voice:
        """The :class:`Voice` of latents a client sent (the front checked their shapes)."""
        width, size = self.latent_dims
        latent = np.frombuffer(latents.gpt_cond_latent, "<f4")
        embedding = np.frombuffer(latents.speaker_embedding, "<f4")
        if latent.size != latents.frames * width or embedding.size != size:
            raise JobRejectedError(
                f"latents must be {width} wide with a speaker embedding of {size}",
                "invalid_message",
            )
        return Voice(
            torch.from_numpy(latent.copy()).reshape(1, latents.frames, width),
            torch.from_numpy(embedding.copy()).reshape(1, size, 1), name="latents",
        )  # fmt: skip

    def close(self) -> None:
        self._scheduler.close()  # every unfinished job ends cancelled

    def realtime_load(self) -> Load | None:
        estimate = self._scheduler.capacity.estimate()
        return None if estimate is None else Load(estimate.streams, estimate.step_s)


class _XttsSynthesis(Synthesis):
    def __init__(self, speech: SpeechJob) -> None:
        self._speech = speech

    def __iter__(self) -> Iterator[NDArray[np.float32]]:
        try:
            for chunk in self._speech:
                self.codes = chunk.codes_so_far
                yield chunk.samples
        except JobCancelledError:  # cancelled, or the scheduler closed: just end
            return
        except SchedulerFailedError as exc:
            raise BackendFailedError(str(exc)) from exc

    def cancel(self) -> None:
        self._speech.cancel()


class _VoiceLibrary:
    """Voice ids -> voices: ``voices_dir`` clips, named speakers and the ``ref_file`` default."""

    def __init__(self, engine: XttsEngine, config: WorkerConfig) -> None:
        self._voices: dict[str, Voice] = {}
        self._engine = engine
        self._config = config
        self._lock = threading.Lock()
        with _cache_lock(config.voice_cache_dir):  # the first worker clones, the others read
            for clip in library_clips(config.voices_dir):
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
        clip = added_clip(self._config.voices_dir, voice_id)
        if clip is None:
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
