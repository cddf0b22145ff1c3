"""The backend interface: what a worker process drives to turn a job's text into PCM.

A worker (:mod:`xtts_balancer.worker.main`) speaks only the IPC protocol; the speech comes from a
:class:`Backend` chosen by ``model.backend`` (see :func:`xtts_balancer.backends.backend_class`).
The contract, which is all a worker relies on:

- :meth:`Backend.load` builds the backend from the worker's :class:`WorkerConfig` (its device,
  ``model.directory``, ``model.voices_dir`` and the free-form ``model.backend_options``); it may
  take as long as it needs and raises to fail the start-up (the message reaches the log).
- :meth:`Backend.voices` names the voice ids it serves, including :data:`DEFAULT_VOICE_ID`;
  :attr:`Backend.languages` the language codes it accepts (empty = any);
  :attr:`Backend.sample_rate` the rate of every chunk it yields.
- :meth:`Backend.submit` starts one :class:`~xtts_balancer.worker.ipc.Job` and returns its
  :class:`Synthesis` at once. It may be called from the worker's main thread while other
  syntheses run (up to ``workers.slots_per_worker`` of them). A bad job is refused with
  :class:`JobRejectedError` before any work.
- A :class:`Synthesis` is iterated on its own thread and yields mono float32 arrays as the audio
  is made. :meth:`Synthesis.cancel` is called from another thread; afterwards iteration must end
  soon (returning or raising: the worker ignores whatever a cancelled synthesis still does).
- :meth:`Backend.latents` (optional) gives a voice's conditioning, or that of a reference clip,
  as :class:`~xtts_balancer.worker.ipc.Latents` of :attr:`Backend.latent_dims`; a backend that
  has some also speaks a job that carries them (``Job.latents``) with exactly them.
- :meth:`Backend.close` ends every running synthesis the same way; the process exits after it.
- :meth:`Backend.realtime_load` (optional) says how many streams the backend can keep faster
  than real time, from its own measurements; the worker reports changes to the front process,
  which leases slots by it when ``workers.capacity_aware`` is on.

Torch-free: the XTTS backend imports torch, this module does not.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from xtts_balancer.worker.ipc import Job, Latents, Load, WorkerConfig

__all__ = [
    "AUDIO_SUFFIXES",
    "DEFAULT_VOICE_ID",
    "Backend",
    "BackendFailedError",
    "JobRejectedError",
    "Synthesis",
    "added_clip",
    "library_clips",
]

#: Reference clip formats a voices_dir may hold.
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg")
#: The voice id that always names the default voice (the worker warms up with it).
DEFAULT_VOICE_ID = "default"


class BackendFailedError(Exception):
    """The backend as a whole can serve no more (a device error, a broken scheduler), raised by
    :meth:`Backend.submit` or a :class:`Synthesis`: the worker fails the job and exits, and the
    supervisor restarts it. A job's own failure is any other exception and stays that job's."""


class JobRejectedError(Exception):
    """A job that cannot start: ``message`` for the client, ``error`` its protocol code
    (``voice_not_found``, ``invalid_message``)."""

    def __init__(self, message: str, error: str) -> None:
        super().__init__(message)
        self.message = message
        self.error = error


class Synthesis(ABC):
    """One running job (see the module docstring)."""

    codes: int = 0
    """Units of audio made so far (XTTS: audio codes); reported in the job's ``JobDone``."""

    @abstractmethod
    def __iter__(self) -> Iterator[NDArray[np.float32]]:
        """Mono float32 chunks at the backend's ``sample_rate``, as they are made."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop soon; thread-safe."""


class Backend(ABC):
    """A speech engine a worker drives (see the module docstring)."""

    sample_rate: int
    """Rate of every chunk, in Hz."""
    languages: tuple[str, ...] = ()
    """Accepted language codes; empty = any."""
    name: ClassVar[str] = "backend"
    """Shown in the worker's log."""
    latent_dims: tuple[int, int] | None = None
    """(GPT width, speaker-embedding size) of its :meth:`latents`; ``None``: it has none."""

    @classmethod
    @abstractmethod
    def load(cls, config: WorkerConfig) -> Backend:
        """The backend, ready to :meth:`submit` (raises to fail the worker's start-up)."""

    @abstractmethod
    def voices(self) -> tuple[str, ...]:
        """The voice ids served, :data:`DEFAULT_VOICE_ID` included."""

    @abstractmethod
    def submit(self, job: Job) -> Synthesis:
        """Start ``job``.

        Raises:
            JobRejectedError: an unknown voice, or a text, language or parameter it cannot speak.
        """

    @abstractmethod
    def close(self) -> None:
        """End every running synthesis and free the device."""

    def latents(self, voice_id: str, clip: bytes | None) -> Latents:
        """The conditioning of ``voice_id``, or of the audio file ``clip`` when given.

        Raises:
            JobRejectedError: no such voice, a clip that is not audio, or a backend without
                latents (this default).
        """
        raise JobRejectedError(f"the {self.name} backend has no speaker latents", "invalid_message")

    def realtime_load(self) -> Load | None:
        """The measured real-time capacity; None = not measured (the fixed slots apply)."""
        return None


def library_clips(voices_dir: Path | None) -> list[Path]:
    """The reference clips of ``voices_dir`` in name order; each file's stem is a voice id."""
    if voices_dir is None:
        return []
    return sorted(
        p for p in voices_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
    )


def added_clip(voices_dir: Path | None, voice_id: str) -> Path | None:
    """The WAV ``POST /v1/voices/add`` stored for ``voice_id`` after start-up, if there is one
    (``voice_id`` is only ever an id, never a path)."""
    if voices_dir is None or not voice_id.isalnum():
        return None
    clip = voices_dir / f"{voice_id}.wav"
    return clip if clip.is_file() else None
