"""The HTTP speech API's request and answer bodies (docs/protocol.md §4.1-4.2).

Pydantic models the handlers in :mod:`xtts_balancer.http_tts` validate and answer with, and from
which :mod:`xtts_balancer.openapi` describes them, so the description cannot drift.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from xtts_core.protocol import (
    OutputFormat,
    PronunciationDictionaryLocator,
    VoiceSettings,
    check_output_format,
)

__all__ = [
    "AudioWithTimestamps",
    "CharacterAlignment",
    "FileQuery",
    "SpeechQuery",
    "SpeechRequest",
    "StreamingQuery",
]


class SpeechRequest(BaseModel):
    """The JSON body of every speech endpoint; only ``text`` is required (§4.1)."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    text: str = Field(min_length=1)
    """What to say."""
    model_id: str = "eleven_multilingual_v2"
    """Accepted whatever it names; this server speaks with the one model it loaded."""
    language_code: str | None = None
    """ISO 639-1 language; none = the server's ``model.language``."""
    voice_settings: VoiceSettings | None = None
    """Only ``speed`` changes the audio."""
    pronunciation_dictionary_locators: list[PronunciationDictionaryLocator] | None = Field(
        None, max_length=3
    )
    """Accepted and ignored."""
    seed: int | None = Field(None, ge=0, le=4294967295)
    """Sampling seed of every sentence (the same seed gives the same audio)."""
    previous_text: str | None = None
    """Accepted and ignored (XTTS takes no context)."""
    next_text: str | None = None
    """Accepted and ignored."""
    previous_request_ids: list[str] | None = Field(None, max_length=3)
    next_request_ids: list[str] | None = Field(None, max_length=3)
    use_pvc_as_ivc: bool = False
    apply_text_normalization: Literal["auto", "on", "off"] = "auto"
    """``off``: numbers, abbreviations and symbols are read as written, not spelt out."""
    apply_language_text_normalization: bool = False
    audio_effects: dict[str, Any] | None = None


class SpeechQuery(BaseModel):
    """Query parameters of the speech endpoints (§4.1)."""

    output_format: OutputFormat = OutputFormat.MP3_44100_128
    """Audio encoding; ``wav_*`` only for the whole-file endpoint."""
    optimize_streaming_latency: int | None = Field(None, ge=0, le=4)
    """Accepted and ignored (the first chunk is always small)."""
    enable_logging: bool = True


class StreamingQuery(SpeechQuery):
    @field_validator("output_format", mode="before")
    @classmethod
    def _streamable(cls, value: object) -> OutputFormat:
        return check_output_format(value, streaming=True)


class FileQuery(SpeechQuery):
    @field_validator("output_format", mode="before")
    @classmethod
    def _known(cls, value: object) -> OutputFormat:
        return check_output_format(value, streaming=False)


class CharacterAlignment(BaseModel):
    """Characters with start and end times in seconds from the start of the request's audio."""

    characters: list[str]
    character_start_times_seconds: list[float]
    character_end_times_seconds: list[float]


class AudioWithTimestamps(BaseModel):
    """``/with-timestamps`` body, and each line of ``/stream/with-timestamps``."""

    audio_base64: str
    alignment: CharacterAlignment | None
    normalized_alignment: CharacterAlignment | None
