"""Messages between the front process and a worker, sent pickled over a ``multiprocessing`` pipe.

A pipe is an anonymous socket pair inherited by the child: nothing listens on a port, so no
stranger can reach a worker and there is no check-then-bind race.
Every message is a small frozen dataclass; audio travels as float32 bytes at the model's rate.

Front -> worker: :class:`Job`, :class:`GetLatents`, :class:`Cancel`, :class:`Stop`,
:class:`Ping` (answered with :class:`Pong`).
Worker -> front: :class:`Ready` (or :class:`StartupFailed`), then per job any number of
:class:`Chunk` and one :class:`JobDone` or :class:`JobFailed`, per :class:`GetLatents` one
:class:`LatentsFound` or :class:`JobFailed`; and, from a backend that measures
its speed, a :class:`Load` whenever its real-time capacity changes.

Torch-free, so the front process can import it without loading the model stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Cancel",
    "Chunk",
    "GetLatents",
    "Job",
    "JobDone",
    "JobFailed",
    "Latents",
    "LatentsFound",
    "Load",
    "Ping",
    "Pong",
    "Ready",
    "StartupFailed",
    "Stop",
    "WorkerConfig",
    "WorkerMessage",
]


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs to start: the backend, its device, model and voice library."""

    name: str
    model_dir: Path | None
    device: str | None
    dtype: str
    voices_dir: Path | None
    ref_file: Path | None
    voice_cache_dir: Path
    language: str
    slots: int
    torch_threads: int | None
    warmup_text: str
    log_level: int
    backend: str = "xtts"
    """``model.backend``: a built-in name or ``package.module:Class``."""
    backend_options: Mapping[str, object] = field(default_factory=dict)
    """``model.backend_options``, for the backend to validate."""
    kv_pool_bytes: int | None = None
    """``workers.kv_pool_bytes``: the most the KV pool may take (none = the free memory)."""
    realtime_safety: float = 0.8
    """``workers.realtime_safety``: share of a code's audio a decode step may take."""
    cuda_graphs: bool = True
    """``workers.cuda_graphs``: replay decode steps as CUDA graphs on a CUDA device."""
    log_format: str = "text"
    """``service.log_format``: the worker logs as the balancer does."""


@dataclass(frozen=True)
class Latents:
    """A voice as XTTS conditions on it, as little-endian float32 bytes: ``gpt_cond_latent`` is
    ``frames`` rows of the GPT's width, ``speaker_embedding`` one vector for the vocoder."""

    gpt_cond_latent: bytes
    frames: int
    speaker_embedding: bytes


@dataclass(frozen=True)
class Job:
    """Speak ``text`` with ``voice_id`` (or with ``latents``, when given); audio comes back as
    :class:`Chunk` messages."""

    job_id: int
    text: str
    language: str
    voice_id: str
    speed: float
    seed: int | None
    max_new_codes: int | None
    first_chunk_codes: int
    chunk_codes: int
    denoise: bool
    normalize: bool = True
    """Spell out numbers, abbreviations and symbols (``apply_text_normalization`` not ``off``)."""
    latents: Latents | None = None


@dataclass(frozen=True)
class GetLatents:
    """The :class:`Latents` of voice ``voice_id``, or of the reference audio ``clip`` (the bytes
    of an audio file) when one is given; answered by :class:`LatentsFound` or
    :class:`JobFailed`."""

    job_id: int
    voice_id: str
    clip: bytes | None = None


@dataclass(frozen=True)
class LatentsFound:
    """The answer to :class:`GetLatents` ``job_id``."""

    job_id: int
    latents: Latents


@dataclass(frozen=True)
class Cancel:
    """Stop job ``job_id``: its stream slot is free within one decode step; nothing more is sent
    for it."""

    job_id: int


@dataclass(frozen=True)
class Stop:
    """Exit: cancel running jobs and leave."""


@dataclass(frozen=True)
class Ping:
    """Are you alive? Answered at once with :class:`Pong` by the worker's main thread."""

    seq: int


@dataclass(frozen=True)
class Pong:
    """The answer to :class:`Ping` ``seq``."""

    seq: int


@dataclass(frozen=True)
class Ready:
    """The model is loaded and warm; these voices and languages can be asked for."""

    voices: tuple[str, ...]
    languages: tuple[str, ...]
    sample_rate: int
    pid: int
    latent_dims: tuple[int, int] | None = None
    """(GPT width, speaker-embedding size) of the :class:`Latents` it takes; ``None``: none."""


@dataclass(frozen=True)
class StartupFailed:
    """The worker could not load its model or voices; it exits after sending this."""

    message: str


@dataclass(frozen=True)
class Chunk:
    """Float32 mono samples of one streamed chunk of job ``job_id``."""

    job_id: int
    samples: bytes


@dataclass(frozen=True)
class JobDone:
    """Job ``job_id`` finished: ``codes`` audio codes in ``seconds`` of compute."""

    job_id: int
    codes: int
    seconds: float


@dataclass(frozen=True)
class JobFailed:
    """Job ``job_id`` failed with a user-facing ``message``; ``error`` is the protocol code."""

    job_id: int
    message: str
    error: str


@dataclass(frozen=True)
class Load:
    """The worker's measured speed: ``realtime_streams`` streams (at least 1) keep every decode
    step faster than real time; the latest steps took ``step_s`` seconds on average."""

    realtime_streams: int
    step_s: float


WorkerMessage = Ready | StartupFailed | Chunk | JobDone | JobFailed | LatentsFound | Load | Pong
"""Anything a worker sends."""
