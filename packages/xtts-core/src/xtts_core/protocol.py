"""ElevenLabs text-to-speech websocket messages, shared by balancer and broker (pydantic; no torch).

What this module holds, with the sections of ``shared/spec/elevenlabs-protocol.md`` it follows:

- the websocket URL's query parameters, the same for both sockets (§2.2, §3): :class:`StreamInputQuery`;
- the ``output_format`` values we serve and their byte formats (§2.8, §8.5, §10.7):
  :class:`OutputFormat`, :class:`AudioFormat`, :func:`parse_output_format`;
- client messages of ``/v1/text-to-speech/{voice_id}/stream-input`` (§2.3: BOS, text, EOS, keep-alive)
  and of ``…/multi-stream-input`` (§3.1: open, text, flush, close context, keep-alive, close socket),
  parsed strictly by :func:`parse_client_message`, which raises :class:`~xtts_core.errors.ProtocolError`
  with one readable line (§9.2: unknown *fields* are ignored, unknown *shapes* and wrong types are not);
- server messages: audio chunk with alignment (§2.4.1, §2.5.3 key spelling), final message (§2.4.2,
  §3.2), error message (§2.4.3), serialised as the §7 reply templates by ``to_json()``;
- close codes (§2.4.3, §9.4; original-spec.md §1.12 for 1001/1003/1011/1013): :class:`CloseCode`;
- the protocol's constants: default chunk schedule and its bounds (§2.3, §2.5.1), the
  ``try_trigger_generation`` threshold (§2.3), inactivity limits (§2.6), contexts per socket (§3).

What it does not hold: protocol *behaviour* (buffering, auth, timers) lives in the servers; HTTP
bodies (§4) come with the API-surface issue. Every model ignores unknown keys (§9.2), so a server may
subclass one to accept extras (e.g. the original's query parameters, original-spec.md §1.2).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from enum import Enum, IntEnum
from typing import Annotated, Any, Final, Literal, NamedTuple, TypeAlias, cast, overload
from urllib.parse import parse_qsl

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    StrictBool,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError
from typing_extensions import Self

from xtts_core.errors import ProtocolError

__all__ = [
    "BOS_TEXT",
    "CHUNK_LENGTH_MAX",
    "CHUNK_LENGTH_MIN",
    "DEFAULT_CHUNK_LENGTH_SCHEDULE",
    "DEFAULT_INACTIVITY_TIMEOUT_S",
    "EOS_TEXT",
    "MAX_CLOSE_REASON_BYTES",
    "MAX_CONTEXTS_PER_SOCKET",
    "MAX_INACTIVITY_TIMEOUT_S",
    "TRY_TRIGGER_MIN_CHARS",
    "Alignment",
    "AudioFormat",
    "AudioOutput",
    "AudioOutputMulti",
    "CloseCode",
    "CloseConnection",
    "CloseContext",
    "CloseSocket",
    "ErrorCode",
    "ErrorMessage",
    "FinalOutput",
    "FinalOutputMulti",
    "FlushContext",
    "GenerationConfig",
    "InitialiseContext",
    "InitializeConnection",
    "KeepContextAlive",
    "MultiStreamInputMessage",
    "OutputFormat",
    "PronunciationDictionaryLocator",
    "SendText",
    "SendTextMulti",
    "ServerMessage",
    "StreamInputMessage",
    "StreamInputQuery",
    "VoiceSettings",
    "close_reason",
    "parse_client_message",
    "parse_output_format",
    "parse_server_message",
]

# --- constants ------------------------------------------------------------------------------------

#: ``text`` of the first message (BOS) and of a keep-alive on stream-input (§2.3).
BOS_TEXT: Final = " "
#: ``text`` that ends a stream-input stream (EOS) or keeps a multi-stream context alive (§2.3, §3.1).
EOS_TEXT: Final = ""
#: ElevenLabs' default ``chunk_length_schedule``; the last value repeats (§2.3, §2.5.1).
DEFAULT_CHUNK_LENGTH_SCHEDULE: tuple[int, ...] = (120, 160, 250, 290)
#: Documented bounds of one schedule entry, in characters (§2.3); entries are clamped into them (§2.5.2).
CHUNK_LENGTH_MIN = 50
CHUNK_LENGTH_MAX = 500
#: Least buffered characters for ``try_trigger_generation`` to generate (§2.3, an engineer's figure).
TRY_TRIGGER_MIN_CHARS = 50
#: Inactivity timeout: default and documented maximum, in seconds (§2.2, §2.6).
DEFAULT_INACTIVITY_TIMEOUT_S = 20
MAX_INACTIVITY_TIMEOUT_S = 180
#: Concurrent contexts one multi-stream-input socket may hold (§3, §3.1).
MAX_CONTEXTS_PER_SOCKET = 5
#: RFC 6455 limit on a close frame's reason, in UTF-8 bytes (§2.4.3).
MAX_CLOSE_REASON_BYTES = 123


class CloseCode(IntEnum):
    """Websocket close codes the protocol uses; :attr:`meaning` says when (§2.4.3, §9.4)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013

    @property
    def meaning(self) -> str:
        """When this code is sent, and where the spec says so."""
        return _CLOSE_CODE_MEANINGS[self]


_CLOSE_CODE_MEANINGS: dict[CloseCode, str] = {
    CloseCode.NORMAL: (
        'normal end: after the final message that answers EOS {"text": ""} on stream-input, '
        "and after close_socket on multi-stream-input; the official SDK stops reading only on "
        "this close (§2.4.2, §3.1, §5.2)"
    ),
    CloseCode.GOING_AWAY: (
        "the server is shutting down and closes streams still running after its grace period "
        "(RFC 6455; original-spec.md §2.4 treats it like 1000)"
    ),
    CloseCode.UNSUPPORTED_DATA: (
        "data of a kind the endpoint cannot accept, e.g. a binary frame (RFC 6455; the original "
        "used it for a bad output format, original-spec.md §1.12; ElevenLabs-style errors use 1008)"
    ),
    CloseCode.POLICY_VIOLATION: (
        "every error the real service reports (input timeout, too many contexts, changed "
        "voice_settings, quota, bad API key), each after an error message {message, error, code} "
        "(§2.4.3, §9.4)"
    ),
    CloseCode.MESSAGE_TOO_BIG: (
        "sent by a client when a server frame exceeds its limit (1 MiB official SDK, 4 MiB "
        "livekit, 16 MiB pipecat), so keep frames small (§2.4.3)"
    ),
    CloseCode.INTERNAL_ERROR: (
        "unexpected server failure, e.g. a relay that cannot reach its backend "
        "(original-spec.md §1.12, §3.5)"
    ),
    CloseCode.TRY_AGAIN_LATER: (
        "no capacity: no free worker or balancer, or the wait queue is full or timed out "
        "(original-spec.md §1.12, §3.3)"
    ),
}


class ErrorCode(str, Enum):
    """Values of the ``error`` field of an :class:`ErrorMessage` (§2.4.3).

    The first two are the real service's codes (reuse them, §9.4); the rest are ours, for errors
    whose real code is unknown.
    """

    INPUT_TIMEOUT_EXCEEDED = "input_timeout_exceeded"
    MAX_ACTIVE_CONVERSATIONS = "max_active_conversations"
    INVALID_MESSAGE = "invalid_message"
    INVALID_API_KEY = "invalid_api_key"
    UNSUPPORTED_OUTPUT_FORMAT = "unsupported_output_format"
    VOICE_NOT_FOUND = "voice_not_found"


def close_reason(message: str) -> str:
    """The first at most 123 UTF-8 bytes of ``message``, cut on a character boundary (§2.4.3, §7)."""
    return message.encode("utf-8")[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore")


# --- output formats (§2.8) ------------------------------------------------------------------------


Codec: TypeAlias = Literal["pcm", "ulaw", "alaw", "mp3", "opus", "wav"]


class AudioFormat(NamedTuple):
    """A parsed ``output_format``: codec, sample rate in Hz and bit rate in kbit/s (None if raw)."""

    codec: Codec
    sample_rate: int
    bitrate_kbps: int | None


class OutputFormat(str, Enum):
    """The ``output_format`` values we serve (§2.8 and the extras real clients send, §8.5).

    ``pcm_R``: raw s16le mono; ``ulaw_8000``/``alaw_8000``: raw G.711; ``mp3_R_B``: MPEG audio at
    B kbit/s; ``opus_48000_B``: Opus in Ogg; ``wav_R``: RIFF/WAV, whole-file HTTP ``convert`` only
    (§4.1). ``mp3_44100`` (the websocket spec's default, with no bit rate) means ``mp3_44100_128``
    (§10.7).
    """

    PCM_8000 = "pcm_8000"
    PCM_16000 = "pcm_16000"
    PCM_22050 = "pcm_22050"
    PCM_24000 = "pcm_24000"
    PCM_32000 = "pcm_32000"
    PCM_44100 = "pcm_44100"
    PCM_48000 = "pcm_48000"
    ULAW_8000 = "ulaw_8000"
    ALAW_8000 = "alaw_8000"
    MP3_22050_32 = "mp3_22050_32"
    MP3_24000_48 = "mp3_24000_48"
    MP3_44100 = "mp3_44100"
    MP3_44100_32 = "mp3_44100_32"
    MP3_44100_64 = "mp3_44100_64"
    MP3_44100_96 = "mp3_44100_96"
    MP3_44100_128 = "mp3_44100_128"
    MP3_44100_192 = "mp3_44100_192"
    OPUS_48000_32 = "opus_48000_32"
    OPUS_48000_64 = "opus_48000_64"
    OPUS_48000_96 = "opus_48000_96"
    OPUS_48000_128 = "opus_48000_128"
    OPUS_48000_192 = "opus_48000_192"
    WAV_8000 = "wav_8000"
    WAV_16000 = "wav_16000"
    WAV_22050 = "wav_22050"
    WAV_24000 = "wav_24000"
    WAV_32000 = "wav_32000"
    WAV_44100 = "wav_44100"
    WAV_48000 = "wav_48000"

    @property
    def audio_format(self) -> AudioFormat:
        """Codec, sample rate and bit rate of this format."""
        codec, rate, *kbps = self.value.split("_")
        bitrate = int(kbps[0]) if kbps else (128 if codec == "mp3" else None)
        return AudioFormat(cast(Codec, codec), int(rate), bitrate)

    @property
    def streamable(self) -> bool:
        """Whether the websockets and streaming HTTP endpoints serve it (every format but wav)."""
        return not self.value.startswith("wav_")


def _check_output_format(value: object, *, streaming: bool) -> OutputFormat:
    """The :class:`OutputFormat` named by ``value``; ``ValueError`` with a one-line reason if none."""
    if isinstance(value, OutputFormat):
        fmt = value
    else:
        try:
            fmt = OutputFormat(value)
        except ValueError:
            allowed = ", ".join(f.value for f in OutputFormat if f.streamable or not streaming)
            raise ValueError(f"unsupported output_format {value!r}; supported: {allowed}") from None
    if streaming and not fmt.streamable:
        raise ValueError(
            f"output_format {fmt.value!r} is served only by the whole-file HTTP endpoint, not by "
            "streaming endpoints"
        )
    return fmt


def parse_output_format(value: str, *, streaming: bool = True) -> AudioFormat:
    """Parse an ``output_format`` such as ``"pcm_24000"`` into ``AudioFormat("pcm", 24000, None)``.

    Args:
        value: the ``output_format`` as the client sent it.
        streaming: refuse ``wav_*``, which only the whole-file HTTP endpoint serves (§4.1).

    Raises:
        ProtocolError: the value is not a format we serve; the message lists the ones we do.
    """
    try:
        return _check_output_format(value, streaming=streaming).audio_format
    except ValueError as exc:
        raise ProtocolError(str(exc), error=ErrorCode.UNSUPPORTED_OUTPUT_FORMAT.value) from None


# --- shared pieces --------------------------------------------------------------------------------


def _none_to_false(value: object) -> object:
    return False if value is None else value


#: A JSON boolean flag; ``null`` means "not set" (§9.2: null values must be accepted).
_Flag = Annotated[StrictBool, BeforeValidator(_none_to_false)]


def _context_id_field() -> Any:
    """``context_id``, also accepted as ``contextId`` (§3.1); ``None`` = the default context."""
    return Field(
        None,
        validation_alias=AliasChoices("context_id", "contextId"),
        serialization_alias="context_id",
    )


def _api_key_field() -> Any:
    """``xi_api_key``, also accepted as ``xi-api-key`` (§1.2)."""
    return Field(
        None,
        validation_alias=AliasChoices("xi_api_key", "xi-api-key"),
        serialization_alias="xi_api_key",
    )


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, use_attribute_docstrings=True
    )


class _ClientMessage(_Model):
    def to_json(self) -> str:
        """The message as a client sends it (wire key spellings; unset optional fields left out)."""
        return self.model_dump_json(by_alias=True, exclude_none=True)


class _ServerMessage(_Model):
    def to_json(self) -> str:
        """The message in the §7 reply template (wire key spellings, nulls kept)."""
        return self.model_dump_json(by_alias=True)


class VoiceSettings(_Model):
    """``voice_settings`` (``RealtimeVoiceSettings``, §2.3); every key optional, ``null`` = default."""

    stability: float = Field(0.5, ge=0.0, le=1.0)
    """How steady the delivery is; lower is more expressive."""
    similarity_boost: float = Field(0.75, ge=0.0, le=1.0)
    """How closely to stick to the reference voice."""
    style: float = Field(0.0, ge=0.0, le=1.0)
    """Style exaggeration (V2+ models)."""
    use_speaker_boost: StrictBool = True
    """Boost similarity to the speaker (V2+ models)."""
    speed: float = Field(1.0, ge=0.7, le=1.2)
    """Speech rate factor, documented range 0.7-1.2."""

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class GenerationConfig(_Model):
    """``generation_config`` (§2.3, §2.5.1): when buffered text is spoken."""

    chunk_length_schedule: list[int] = Field(
        default_factory=lambda: list(DEFAULT_CHUNK_LENGTH_SCHEDULE)
    )
    """Characters to buffer before the 1st, 2nd, ... generation; the last value repeats. Entries
    are clamped into 50-500 and an empty or null list means the default (§2.5.2)."""

    @field_validator("chunk_length_schedule", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any) -> Any:
        return list(DEFAULT_CHUNK_LENGTH_SCHEDULE) if value is None or value == [] else value

    @field_validator("chunk_length_schedule")
    @classmethod
    def _clamp(cls, value: list[int]) -> list[int]:
        return [min(max(item, CHUNK_LENGTH_MIN), CHUNK_LENGTH_MAX) for item in value]


class PronunciationDictionaryLocator(_Model):
    """One entry of ``pronunciation_dictionary_locators`` (§2.3); first message only."""

    pronunciation_dictionary_id: str = Field(
        validation_alias=AliasChoices("pronunciation_dictionary_id", "dictionary_id"),
        serialization_alias="pronunciation_dictionary_id",
    )
    """The dictionary (older docs called it ``dictionary_id``)."""
    version_id: str | None = None
    """The dictionary version; the latest when omitted."""


# --- stream-input client messages (§2.3) ---------------------------------------------------------


class InitializeConnection(_ClientMessage):
    """``{"text": " ", ...}``: the first message (BOS) of a stream-input socket (§2.3 a).

    A later ``{"text": " "}`` has the same shape and is a keep-alive: which one it is depends only on
    its position, which the server knows. ``voice_settings`` and ``generation_config`` are fixed by
    the first message; later messages may repeat them unchanged (§2.3).
    """

    text: Literal[" "] = BOS_TEXT
    """A single space: marks the start, produces no audio."""
    voice_settings: VoiceSettings | None = None
    """Voice settings for the whole stream; ``null`` (the SDK) or ``{}`` (livekit) = defaults."""
    generation_config: GenerationConfig | None = None
    """The chunk schedule for the whole stream; absent = the default schedule."""
    pronunciation_dictionary_locators: list[PronunciationDictionaryLocator] | None = None
    """Pronunciation dictionaries to apply (within one sent chunk)."""
    xi_api_key: str | None = _api_key_field()
    """API key, if not sent in the ``xi-api-key`` header (§1.2)."""
    authorization: str | None = None
    """Bearer token (§1.2)."""
    try_trigger_generation: _Flag = False
    """Not in the init schema, but the official SDK sends ``true`` here (§2.3, §5.2)."""


class SendText(_ClientMessage):
    """``{"text": "Hello "}``: text to add to the stream's buffer (§2.3 b).

    ``{"text": " ", "flush": true}`` is one too: a flush that adds no text.
    """

    text: str
    """Text to append; should end with one space, but text without one must not be lost."""
    try_trigger_generation: _Flag = False
    """Generate now if at least ~50 characters are buffered (a hint; deprecated)."""
    flush: _Flag = False
    """Generate everything buffered, however short; no ``isFinal`` follows."""
    voice_settings: VoiceSettings | None = None
    """Allowed only unchanged from the first message."""
    generation_config: GenerationConfig | None = Field(
        None,
        validation_alias=AliasChoices("generator_config", "generation_config"),
        serialization_alias="generator_config",
    )
    """Spelled ``generator_config`` in the SendText schema (sic); allowed only unchanged."""

    @model_validator(mode="after")
    def _not_bos_or_eos(self) -> SendText:
        if self.text == EOS_TEXT or (self.text == BOS_TEXT and not self.flush):
            raise ValueError(
                f"text {self.text!r} is a keep-alive or end of stream, not text to speak"
            )
        return self


class CloseConnection(_ClientMessage):
    """``{"text": ""}``: end of stream (EOS). The server speaks what is buffered, sends the final
    message and closes with 1000 (§2.3 c, §2.4.2)."""

    text: Literal[""] = EOS_TEXT
    """The empty string."""


StreamInputMessage: TypeAlias = InitializeConnection | SendText | CloseConnection
"""Any client message of the stream-input socket."""

# --- multi-stream-input client messages (§3.1) ---------------------------------------------------


class InitialiseContext(_ClientMessage):
    """Open (or re-initialise) a context with its settings (``InitialiseContext``, §3.1).

    A multi-stream message is this kind when it carries any per-context setting or credential;
    ``text`` may be ``" "`` or real text. The first message seen for a context creates it whatever
    its kind, so a plain :class:`SendTextMulti` may open a context too (with default settings).
    """

    text: str = BOS_TEXT
    """``" "`` to just open the context, or first text to speak."""
    context_id: str | None = _context_id_field()
    """The context; ``None`` = the socket's default context."""
    voice_settings: VoiceSettings | None = None
    """Voice settings of this context; first message of the context only."""
    generation_config: GenerationConfig | None = None
    """Chunk schedule of this context; first message of the context only."""
    pronunciation_dictionary_locators: list[PronunciationDictionaryLocator] | None = None
    """Pronunciation dictionaries for this context."""
    xi_api_key: str | None = _api_key_field()
    """API key, if not sent in the header (§1.2)."""
    authorization: str | None = None
    """Bearer token (§1.2)."""
    flush: _Flag = False
    """Generate the buffered text at once."""


class SendTextMulti(_ClientMessage):
    """``{"text": "Hello. ", "context_id": "c1"}``: text for one context (``SendTextMulti``, §3.1)."""

    text: str
    """Text to append to the context's buffer (never empty: that is :class:`KeepContextAlive`)."""
    context_id: str | None = _context_id_field()
    """The context; ``None`` = the socket's default context."""
    try_trigger_generation: _Flag = False
    """Generate now if enough text is buffered (a hint)."""

    @field_validator("text")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if value == EOS_TEXT:
            raise ValueError("empty text is a keep-alive, not text to speak")
        return value


class FlushContext(_ClientMessage):
    """``{"context_id": "c1", "flush": true}``: speak everything the context has buffered (§3.1).

    ``text``, if present, is appended first; an empty ``text`` with ``flush`` is a flush, not a
    keep-alive. No ``isFinal`` follows a flush.
    """

    context_id: str | None = _context_id_field()
    """The context; ``None`` = the socket's default context."""
    flush: Literal[True] = True
    """Always true."""
    text: str | None = None
    """Text to append before flushing (pipecat sends none, livekit sends ``""`` or text)."""


class CloseContext(_ClientMessage):
    """``{"context_id": "c1", "close_context": true}``: end one context (``CloseContext``, §3.1).

    Stops the context (a flush already requested still completes) and produces its final message;
    the id may be reused later. Any ``text`` is ignored.
    """

    context_id: str | None = _context_id_field()
    """The context; ``None`` = the socket's default context."""
    close_context: Literal[True] = True
    """Always true."""


class KeepContextAlive(_ClientMessage):
    """``{"text": "", "context_id": "c1"}``: reset a context's inactivity clock (§3.1, §3.3).

    Without ``context_id`` (pipecat's context-less keep-alive) it is a connection-level no-op.
    Unlike stream-input, empty text ends nothing here.
    """

    text: Literal[""] = EOS_TEXT
    """The empty string."""
    context_id: str | None = _context_id_field()
    """The context; ``None`` = no context (connection keep-alive)."""


class CloseSocket(_ClientMessage):
    """``{"close_socket": true}``: finish pending flushes, close every context and the socket (§3.1)."""

    close_socket: Literal[True] = True
    """Always true."""


MultiStreamInputMessage: TypeAlias = (
    InitialiseContext | SendTextMulti | FlushContext | CloseContext | KeepContextAlive | CloseSocket
)
"""Any client message of the multi-stream-input socket."""

#: Keys that make a multi-stream message an :class:`InitialiseContext`.
_CONTEXT_SETTINGS_KEYS = frozenset(
    {
        "voice_settings",
        "generation_config",
        "pronunciation_dictionary_locators",
        "xi_api_key",
        "xi-api-key",
        "authorization",
    }
)

# --- server messages (§2.4, §3.2, §7) ------------------------------------------------------------


class Alignment(_Model):
    """Character timings of one audio chunk (§2.4.1): ``chars``, ``charStartTimesMs``,
    ``charDurationsMs``, of equal length, in ms from the start of *this* chunk's audio.

    Serialised with ``charDurationsMs`` (what the real service sends, §2.5.3); the spec's
    May-Oct 2025 spellings ``charsDurationsMs``/``charsStartTimesMs`` are accepted on input.
    """

    chars: list[str]
    """The characters, in order, each reported once per stream."""
    char_start_times_ms: list[int] = Field(
        validation_alias=AliasChoices(
            "charStartTimesMs", "charsStartTimesMs", "char_start_times_ms"
        ),
        serialization_alias="charStartTimesMs",
    )
    """Start of each character, in ms from the start of this chunk."""
    char_durations_ms: list[int] = Field(
        validation_alias=AliasChoices("charDurationsMs", "charsDurationsMs", "char_durations_ms"),
        serialization_alias="charDurationsMs",
    )
    """Duration of each character, in ms."""

    @model_validator(mode="after")
    def _same_lengths(self) -> Alignment:
        if not len(self.chars) == len(self.char_start_times_ms) == len(self.char_durations_ms):
            raise ValueError(
                "chars, charStartTimesMs and charDurationsMs must have the same length "
                f"(got {len(self.chars)}, {len(self.char_start_times_ms)}, "
                f"{len(self.char_durations_ms)})"
            )
        return self


class AudioOutput(_ServerMessage):
    """An audio chunk of a stream-input socket (``AudioOutput``, §2.4.1, §7)."""

    audio: str = Field(min_length=1)
    """The chunk's bytes in the requested ``output_format``, base64-encoded; never empty."""
    is_final: None = Field(None, validation_alias="isFinal", serialization_alias="isFinal")
    """Always ``null`` on audio (the real service sends null, not false)."""
    normalized_alignment: Alignment | None = Field(
        None, validation_alias="normalizedAlignment", serialization_alias="normalizedAlignment"
    )
    """Timings over the text after normalisation (numbers spelled out, ...)."""
    alignment: Alignment | None = None
    """Timings over the text as the client sent it."""

    @field_validator("audio")
    @classmethod
    def _is_base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("audio must be base64") from None
        return value

    @classmethod
    def from_audio(cls, data: bytes, **fields: Any) -> Self:
        """A message carrying ``data`` (already in the output format), base64-encoded.

        ``fields`` are the other fields by name: ``alignment``, ``normalized_alignment`` and,
        for :class:`AudioOutputMulti`, ``context_id``.
        """
        return cls(audio=base64.b64encode(data).decode("ascii"), **fields)

    def audio_bytes(self) -> bytes:
        """The decoded audio bytes."""
        return base64.b64decode(self.audio)


class FinalOutput(_ServerMessage):
    """``{"isFinal": true}`` after the last audio of a stream-input stream (``FinalOutput``, §2.4.2).

    Sent only in reply to EOS; then the server closes with 1000. Serialised in the §7 form with
    ``audio`` and both alignments ``null``; never carries audio.
    """

    audio: None = None
    """Always ``null``."""
    is_final: Literal[True] = Field(True, validation_alias="isFinal", serialization_alias="isFinal")
    """Always true."""
    normalized_alignment: None = Field(
        None, validation_alias="normalizedAlignment", serialization_alias="normalizedAlignment"
    )
    """Always ``null``."""
    alignment: None = None
    """Always ``null``."""


class AudioOutputMulti(AudioOutput):
    """An audio chunk of one multi-stream context (``AudioOutputMulti``, §3.2, §7).

    Serialised with ``contextId`` (which pipecat requires) and ``context_id`` (which livekit also
    reads) both set; either is accepted on input.
    """

    context_id: str = Field(
        validation_alias=AliasChoices("contextId", "context_id"), serialization_alias="contextId"
    )
    """The context this audio belongs to."""

    @model_serializer(mode="wrap")
    def _echo_snake_case(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if info.by_alias:
            data["context_id"] = self.context_id
        return data


class FinalOutputMulti(_ServerMessage):
    """``{"isFinal": true, "contextId": "c1"}``: a context has finished closing (§3.2, §7).

    Serialised as ``{"isFinal": true, "contextId": id, "context_id": id, "is_final": true}``: the
    snake-case echoes serve clients that read those spellings (livekit; the docs' own sample).
    """

    is_final: Literal[True] = Field(True, validation_alias="isFinal", serialization_alias="isFinal")
    """Always true."""
    context_id: str = Field(
        validation_alias=AliasChoices("contextId", "context_id"), serialization_alias="contextId"
    )
    """The context that finished."""

    @model_serializer(mode="wrap")
    def _echo_snake_case(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if info.by_alias:
            data["context_id"] = self.context_id
            data["is_final"] = True
        return data


class ErrorMessage(_ServerMessage):
    """``{"message", "error", "code"}``, sent before closing on an error (§2.4.3, §7, §9.4).

    Close the socket afterwards with ``code`` and :meth:`close_reason` as the reason.
    """

    message: str
    """Human-readable text (the full text; the close reason is cut to 123 bytes)."""
    error: str
    """Machine-readable code, e.g. ``input_timeout_exceeded`` (see :class:`ErrorCode`)."""
    code: int = CloseCode.POLICY_VIOLATION.value
    """The close code that follows (1008 for every error the real service reports)."""

    def close_reason(self) -> str:
        """The reason for the close frame: ``message`` cut to 123 UTF-8 bytes."""
        return close_reason(self.message)

    @classmethod
    def from_error(cls, exc: ProtocolError) -> ErrorMessage:
        """The message to send for a :class:`~xtts_core.errors.ProtocolError`."""
        return cls(message=exc.message, error=exc.error, code=exc.code)

    @classmethod
    def input_timeout(cls, timeout_s: int) -> ErrorMessage:
        """The real service's inactivity error, word for word (§2.4.3, §2.6)."""
        return cls(
            message=(
                f"Have not received a new text input within the timeout of {timeout_s} seconds. "
                "Streaming input terminated. Please make sure to either feed the input in the "
                'timely manner, or to send the end of input text (empty string "") when done.'
            ),
            error=ErrorCode.INPUT_TIMEOUT_EXCEEDED.value,
        )

    @classmethod
    def max_active_conversations(cls, limit: int = MAX_CONTEXTS_PER_SOCKET) -> ErrorMessage:
        """The real service's too-many-contexts error, word for word (§2.4.3, §3.1)."""
        return cls(
            message=(
                f"Maximum simultaneous contexts per WebSocket connection exceeded ({limit}). "
                "Please close an existing context before opening a new one."
            ),
            error=ErrorCode.MAX_ACTIVE_CONVERSATIONS.value,
        )


ServerMessage: TypeAlias = (
    AudioOutputMulti | FinalOutputMulti | AudioOutput | FinalOutput | ErrorMessage
)
"""Any server message of either socket."""

# --- query parameters (§2.2) ---------------------------------------------------------------------


class StreamInputQuery(_Model):
    """Query parameters of both websocket URLs (§2.2, §3); all optional, unknown ones ignored.

    Booleans arrive as ``true``/``false``. Build it with :meth:`parse`, which raises
    :class:`~xtts_core.errors.ProtocolError`.
    """

    model_config = ConfigDict(protected_namespaces=())

    model_id: str | None = None
    """Model requested; clients send ElevenLabs ids, the server maps them to what it runs."""
    language_code: str | None = None
    """ISO 639-1 language to force."""
    enable_logging: bool = True
    """``false`` = zero-retention mode."""
    enable_ssml_parsing: bool = False
    """Parse SSML tags such as ``<break/>``."""
    output_format: OutputFormat = OutputFormat.MP3_44100
    """Encoding of the ``audio`` bytes (§2.8); the spec default is ``mp3_44100``."""
    inactivity_timeout: int = Field(DEFAULT_INACTIVITY_TIMEOUT_S, ge=1)
    """Seconds of client silence before the stream is closed; values above 180 are clamped."""
    sync_alignment: bool = False
    """``true``: every chunk carries its own timings; ``false``: each generation's first chunk."""
    auto_mode: bool = False
    """Turn off the chunk schedule and buffering (for clients sending whole sentences)."""
    apply_text_normalization: Literal["auto", "on", "off"] = "auto"
    """Number and date spelling normaliser."""
    seed: int | None = Field(None, ge=0, le=4294967295)
    """Best-effort determinism."""
    authorization: str | None = None
    """Bearer token (§1.2)."""
    optimize_streaming_latency: int = Field(0, ge=0, le=4)
    """Deprecated on websockets; accepted and ignored."""
    apply_language_text_normalization: bool | None = None
    """Language-specific normalisation (livekit sends it)."""
    single_use_token: str | None = None
    """Single-use token replacing the API key (§1.2)."""
    xi_api_key: str | None = None
    """API key in the query (undocumented, common in hand-written clients, §1.2)."""

    @field_validator("output_format", mode="before")
    @classmethod
    def _known_format(cls, value: Any) -> OutputFormat:
        try:
            return _check_output_format(value, streaming=True)
        except ValueError as exc:
            raise PydanticCustomError("output_format", "{reason}", {"reason": str(exc)}) from None

    @field_validator("inactivity_timeout")
    @classmethod
    def _clamp_timeout(cls, value: int) -> int:
        return min(value, MAX_INACTIVITY_TIMEOUT_S)

    @property
    def audio_format(self) -> AudioFormat:
        """Codec, sample rate and bit rate of :attr:`output_format`."""
        return self.output_format.audio_format

    @classmethod
    def parse(cls, query: str | bytes | Mapping[str, str]) -> StreamInputQuery:
        """Validate a raw query string (``a=1&b=2``) or a mapping (e.g. Starlette's ``QueryParams``).

        A repeated parameter keeps its last value; an empty value counts as absent.

        Raises:
            ProtocolError: a value is invalid (one line naming the parameter).
        """
        if isinstance(query, bytes):
            query = query.decode("latin-1")
        pairs = (
            parse_qsl(query, keep_blank_values=True) if isinstance(query, str) else query.items()
        )
        params = {key: value for key, value in pairs if value != ""}
        try:
            return cls.model_validate(params)
        except ValidationError as exc:
            fmt_error = any(err["type"] == "output_format" for err in exc.errors())
            raise ProtocolError(
                "invalid query: " + _describe(exc),
                error=(
                    ErrorCode.UNSUPPORTED_OUTPUT_FORMAT if fmt_error else ErrorCode.INVALID_MESSAGE
                ).value,
            ) from exc


# --- parsing --------------------------------------------------------------------------------------

_JSON_TYPES: dict[type, str] = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _describe(exc: ValidationError, limit: int = 3) -> str:
    """One line for a pydantic error: ``loc: reason`` for the first ``limit`` problems."""
    errors = exc.errors(include_url=False)
    parts = []
    for err in errors[:limit]:
        loc = ".".join(str(part) for part in err["loc"])
        kind = err["type"]
        value = err.get("input")
        if kind == "missing":
            reason = "field required"
        elif kind == "value_error":
            reason = err["msg"].removeprefix("Value error, ")
        elif kind == "output_format":  # its message names the parameter already
            loc, reason = "", err["msg"]
        elif kind.endswith("_type"):
            reason = f"{err['msg']}, got {_json_type(value)}"
        elif isinstance(value, str | int | float) and (
            kind.endswith("_parsing") or kind in ("literal_error", "enum")
        ):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            reason = f"{err['msg']}, got {shown}"
        else:
            reason = err["msg"]
        parts.append(f"{loc}: {reason}" if loc else reason)
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return " ".join("; ".join(parts).split())


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load_object(raw: str | bytes) -> dict[str, Any]:
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("message is not valid UTF-8") from None
    try:
        obj = json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ProtocolError(
            f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"message must be a JSON object, got {_json_type(obj)}")
    return obj


def _flag(obj: Mapping[str, Any], key: str) -> bool:
    value = obj.get(key)
    if value is None or value is False:
        return False
    if value is True:
        return True
    raise ProtocolError(f"{key}: must be a boolean, got {_json_type(value)}")


def _text(obj: Mapping[str, Any]) -> str | None:
    value = obj.get("text")
    if value is not None and not isinstance(value, str):
        raise ProtocolError(f"text: must be a string, got {_json_type(value)}")
    return value


def _stream_kind(obj: Mapping[str, Any]) -> type[StreamInputMessage]:
    text = _text(obj)
    if text is None:
        raise ProtocolError("text: field required (every stream-input message carries text)")
    if text == BOS_TEXT and not _flag(obj, "flush"):
        return InitializeConnection
    if text == EOS_TEXT:
        return CloseConnection
    return SendText


def _multi_kind(obj: Mapping[str, Any]) -> type[MultiStreamInputMessage]:
    if _flag(obj, "close_socket"):
        return CloseSocket
    if _flag(obj, "close_context"):
        return CloseContext
    text = _text(obj)
    flush = _flag(obj, "flush")
    if text is None and not flush:
        raise ProtocolError(
            "message must carry text, flush: true, close_context: true or close_socket: true"
        )
    if _CONTEXT_SETTINGS_KEYS.intersection(obj):
        return InitialiseContext
    if flush:
        return FlushContext
    if text == EOS_TEXT:
        return KeepContextAlive
    return SendTextMulti


@overload
def parse_client_message(
    raw: str | bytes, *, multi_context: Literal[False] = False
) -> StreamInputMessage: ...
@overload
def parse_client_message(
    raw: str | bytes, *, multi_context: Literal[True]
) -> MultiStreamInputMessage: ...
@overload
def parse_client_message(
    raw: str | bytes, *, multi_context: bool
) -> StreamInputMessage | MultiStreamInputMessage: ...
def parse_client_message(
    raw: str | bytes, *, multi_context: bool = False
) -> StreamInputMessage | MultiStreamInputMessage:
    """Parse one client frame of the stream-input (default) or multi-stream-input socket.

    The kind is decided by content, as the protocol does (§2.3, §3.1):

    - stream-input: ``text`` is required; ``" "`` -> :class:`InitializeConnection` (BOS, or a
      keep-alive after the first message), ``""`` -> :class:`CloseConnection`, else
      :class:`SendText`.
    - multi-stream-input, first match wins: ``close_socket`` -> :class:`CloseSocket`;
      ``close_context`` -> :class:`CloseContext`; any per-context setting or credential ->
      :class:`InitialiseContext`; ``flush`` -> :class:`FlushContext`; ``text == ""`` ->
      :class:`KeepContextAlive`; other text -> :class:`SendTextMulti`.

    Unknown keys are ignored (§9.2); ``null`` stands for an absent optional field.

    Raises:
        ProtocolError: not UTF-8, not JSON, not an object, no recognisable kind, or a field of the
            wrong type or out of range. The message is one line naming the field, fit to send back
            in an :class:`ErrorMessage`.
    """
    obj = _load_object(raw)
    kind = _multi_kind(obj) if multi_context else _stream_kind(obj)
    try:
        return kind.model_validate(obj)
    except ValidationError as exc:
        raise ProtocolError(_describe(exc)) from exc


def parse_server_message(raw: str | bytes, *, multi_context: bool = False) -> ServerMessage:
    """Parse one server frame (for clients, relays and tests): error, final or audio message.

    Raises:
        ProtocolError: the frame is not one of the server messages of that socket.
    """
    obj = _load_object(raw)
    kind: type[ServerMessage]
    if "error" in obj and "message" in obj:
        kind = ErrorMessage
    elif obj.get("isFinal") is True or obj.get("is_final") is True:
        kind = FinalOutputMulti if multi_context else FinalOutput
    else:
        kind = AudioOutputMulti if multi_context else AudioOutput
    try:
        return kind.model_validate(obj)
    except ValidationError as exc:
        raise ProtocolError(_describe(exc)) from exc
