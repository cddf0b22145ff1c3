"""The OpenAI speech API's request, answers and settings (``POST /v1/audio/speech``).

Pydantic models :mod:`xtts_balancer.openai_speech` validates and answers with, and from which
:mod:`xtts_balancer.openapi` describes the route; the ``openai:`` settings section, whose
``voices`` map gives OpenAI's built-in voice names our voices. Field names, ranges and defaults
are OpenAI's (``openai.types.audio.SpeechCreateParams``, ``SpeechAudioDeltaEvent``,
``SpeechAudioDoneEvent``, ``Model``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from xtts_core.protocol import AudioFormat
from xtts_core.settings import SettingsSection

__all__ = [
    "CONTENT_TYPES",
    "OPENAI_VOICES",
    "RESPONSE_FORMATS",
    "OpenAIModel",
    "OpenAIModelList",
    "OpenAISection",
    "SpeechAudioDelta",
    "SpeechAudioDone",
    "SpeechCreate",
    "SpeechUsage",
    "VoiceRef",
]

#: OpenAI's built-in voice names: each speaks with ``openai.voices[name]``, else the default voice.
OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer",
     "verse", "marin", "cedar"}
)  # fmt: skip

#: The audio of each ``response_format``: everything at the model's 24 kHz except Opus (48 kHz,
#: the rate Ogg/Opus decoders play); FLAC's "bit rate" is the uncompressed one (see
#: :mod:`xtts_balancer.encoders`). ``wav`` is 16-bit PCM behind a streaming RIFF header.
RESPONSE_FORMATS: dict[str, AudioFormat] = {
    "mp3": AudioFormat("mp3", 24000, 64),
    "opus": AudioFormat("opus", 48000, 64),
    "aac": AudioFormat("aac", 24000, 64),
    "flac": AudioFormat("flac", 24000, 384),
    "wav": AudioFormat("wav", 24000, None),
    "pcm": AudioFormat("pcm", 24000, None),
}

#: Content types OpenAI answers each ``response_format`` with.
CONTENT_TYPES = {
    "mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
    "wav": "audio/wav", "pcm": "audio/pcm",
}  # fmt: skip


class VoiceRef(BaseModel):
    """A custom voice named by id (``{"id": "..."}``)."""

    id: str = Field(min_length=1)


class SpeechCreate(BaseModel):
    """The JSON body of ``POST /v1/audio/speech``."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    model: str = Field(min_length=1)
    """Accepted whatever it names (``tts-1``, ``gpt-4o-mini-tts``, ...); the server speaks with
    the one model it loaded."""
    input: str = Field(min_length=1)
    """What to say; at most ``limits.max_text_chars`` characters."""
    voice: str | VoiceRef
    """One of our voice ids or names, or an OpenAI voice name (``openai.voices``)."""
    instructions: str | None = None
    """Accepted and ignored: XTTS takes no style prompt (the reference clip sets the voice)."""
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    """Speaking rate; XTTS stretches its latents by ``1 / speed`` (the whole range applies)."""
    stream_format: Literal["audio", "sse"] = "audio"
    """``audio``: the body is the audio, streamed; ``sse``: server-sent events."""


class SpeechUsage(BaseModel):
    """``usage`` of the final event: characters in, audio codes (46.4 ms each) out."""

    input_tokens: int
    output_tokens: int
    total_tokens: int


class SpeechAudioDelta(BaseModel):
    """One ``stream_format: sse`` event with audio (base64 in ``response_format``)."""

    type: Literal["speech.audio.delta"] = "speech.audio.delta"
    audio: str


class SpeechAudioDone(BaseModel):
    """The last ``stream_format: sse`` event."""

    type: Literal["speech.audio.done"] = "speech.audio.done"
    usage: SpeechUsage


class OpenAIModel(BaseModel):
    """One entry of the OpenAI model listing."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class OpenAIModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIModel]


class OpenAISection(SettingsSection):
    """The OpenAI speech API (``openai:``)."""

    voices: dict[str, str] = Field(default_factory=dict)
    """Voice name -> our voice id, e.g. ``{alloy: narrator}``. OpenAI's built-in names not
    mapped here speak with the default voice; other names added here are accepted too."""
