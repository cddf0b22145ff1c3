"""The request and answer shapes of coqui's xtts-streaming-server API (:mod:`coqui_api`).

The shapes are that server's: a voice is ``speaker_embedding`` (one vector) and
``gpt_cond_latent`` (rows of the GPT's width), as ``/studio_speakers`` and ``/clone_speaker``
answer and ``/tts_stream`` and ``/tts`` take them. Every number must be finite; the sizes are
checked against the workers' model by :func:`latents_of`, so a client learns what is wrong
with a 422 naming the field before any audio is made.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, RootModel

from xtts_balancer.http_common import ApiError
from xtts_balancer.worker.ipc import Latents

__all__ = [
    "MAX_LATENT_FRAMES",
    "CoquiLanguages",
    "CoquiSpeaker",
    "CoquiSpeakers",
    "CoquiSpeechRequest",
    "CoquiStreamRequest",
    "CoquiWav",
    "latents_of",
    "speaker_of",
]

#: Most conditioning rows a request may carry (XTTS makes 32; each row is a prompt position).
MAX_LATENT_FRAMES = 64

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class CoquiSpeaker(BaseModel):
    """One voice's latents, as ``/studio_speakers`` and ``/clone_speaker`` give them."""

    speaker_embedding: list[float]
    gpt_cond_latent: list[list[float]]


class CoquiSpeakers(RootModel[dict[str, CoquiSpeaker]]):
    """``GET /studio_speakers``: every voice by its id."""


class CoquiLanguages(RootModel[list[str]]):
    """``GET /languages``: the language codes the model speaks."""


class CoquiWav(RootModel[str]):
    """``POST /tts``: the whole answer, a base64 WAV (24 kHz 16-bit mono) as a JSON string."""


class CoquiSpeechRequest(BaseModel):
    """``POST /tts``: text, its language and the voice's latents."""

    model_config = ConfigDict(extra="ignore")

    text: str = Field(min_length=1)
    language: str = Field(min_length=1, max_length=16)
    speaker_embedding: list[FiniteFloat]
    gpt_cond_latent: list[list[FiniteFloat]]
    seed: int | None = Field(None, ge=0, le=4294967295)
    """Ours, not coqui's: the sampling seed of every sentence, as in the ElevenLabs API."""


class CoquiStreamRequest(CoquiSpeechRequest):
    """``POST /tts_stream``: as ``/tts``, streamed; coqui sends ``stream_chunk_size`` as a
    string."""

    add_wav_header: bool = True
    """A WAV header (of unknown length) before the raw PCM."""
    stream_chunk_size: int = Field(default=20, ge=1, le=400)
    """GPT codes per streamed chunk after the first (coqui's meaning; XTTS makes ~21.5 a second)."""


def latents_of(body: CoquiSpeechRequest, dims: tuple[int, int]) -> Latents:
    """The :class:`Latents` of ``body`` for a model of ``dims`` (GPT width, embedding size).

    ``gpt_cond_latent`` is taken as coqui reshapes it: its rows (all of one length) joined and
    cut into rows of the GPT's width, at most :data:`MAX_LATENT_FRAMES` of them.

    Raises:
        ApiError: 422 naming the field whose size does not fit the model.
    """
    width, size = dims
    if len(body.speaker_embedding) != size:
        raise ApiError.invalid(
            ["body", "speaker_embedding"],
            f"speaker_embedding must hold {size} numbers, got {len(body.speaker_embedding)}",
        )
    rows = body.gpt_cond_latent
    values = sum(len(row) for row in rows)
    if not rows or any(len(row) != len(rows[0]) for row in rows) or values % width:
        raise ApiError.invalid(
            ["body", "gpt_cond_latent"],
            f"gpt_cond_latent must be rows of equal length holding a multiple of {width} numbers",
        )
    frames = values // width
    if frames > MAX_LATENT_FRAMES:
        raise ApiError.invalid(
            ["body", "gpt_cond_latent"],
            f"gpt_cond_latent holds {frames} rows of {width}; at most {MAX_LATENT_FRAMES}",
        )
    latent = np.asarray(rows, "<f4").reshape(frames, width)
    embedding = np.asarray(body.speaker_embedding, "<f4")
    if not (np.isfinite(latent).all() and np.isfinite(embedding).all()):  # beyond float32
        raise ApiError.invalid(["body"], "the latents must be finite float32 numbers")
    return Latents(latent.tobytes(), frames, embedding.tobytes())


def speaker_of(latents: Latents) -> CoquiSpeaker:
    """``latents`` in coqui's shape, every float32 exact (coqui's server rounds to half
    precision), so a client that sends them back is spoken with exactly these latents."""
    latent = np.frombuffer(latents.gpt_cond_latent, "<f4").reshape(latents.frames, -1)
    embedding = np.frombuffer(latents.speaker_embedding, "<f4")
    return CoquiSpeaker(
        speaker_embedding=embedding.astype(float).tolist(),
        gpt_cond_latent=latent.astype(float).tolist(),
    )
