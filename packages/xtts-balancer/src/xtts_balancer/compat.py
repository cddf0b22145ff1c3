"""What the balancer accepts beyond ElevenLabs': the original server's query parameters and its
``ttsInitRequest`` first message, so that its clients keep working.
Where both name the same thing, ElevenLabs' spelling wins (see the package README).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from xtts_core.protocol import CHUNK_LENGTH_MAX, CHUNK_LENGTH_MIN, StreamInputQuery

__all__ = ["BalancerQuery", "TtsInitRequest"]


class BalancerQuery(StreamInputQuery):
    """ElevenLabs' query parameters plus those the original server read."""

    language: str | None = None
    """The original's language parameter; ``language_code`` wins when both are given."""
    speed: float | None = Field(default=None, ge=0.25, le=4.0)
    """The original's speed; ``voice_settings.speed`` wins when given."""
    stream_chunk_size: int | None = Field(default=None, ge=1, le=500)
    """The original's chunk size in codes: our largest chunk (``stream.chunk_codes``)."""
    overlap_wav_len: int | None = Field(default=None, ge=0)
    """Accepted and ignored: our streaming is exact, no cross-fade needed."""
    left_context_seconds: float | None = None
    """Accepted and ignored: the vocoder always has its exact left context."""


class _InitGenerationConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    speed: float | None = Field(default=None, ge=0.25, le=4.0)
    language: str | None = None
    chunk_length_schedule: list[int] | None = None

    @field_validator("chunk_length_schedule")
    @classmethod
    def _clamp(cls, value: list[int] | None) -> list[int] | None:
        if not value:
            return None
        return [min(max(item, CHUNK_LENGTH_MIN), CHUNK_LENGTH_MAX) for item in value]


class TtsInitRequest(BaseModel):
    """The original server's optional first message ``{"type": "ttsInitRequest", ...}``."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["ttsInitRequest"]
    audio_format: str | None = Field(
        None, validation_alias=AliasChoices("audio_format", "EL_AUDIO_FORMAT")
    )
    generation_config: _InitGenerationConfig | None = None
    xi_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("xi_api_key", "xi-api-key")
    )
    authorization: str | None = None
