"""Client messages of both sockets, their shared settings, and :func:`parse_client_message`.

``/v1/text-to-speech/{voice_id}/stream-input`` (§2.3: BOS, text, EOS, keep-alive) and
``…/multi-stream-input`` (§3.1: open, text, flush, close context, keep-alive, close socket), with
``voice_settings``, ``generation_config`` and ``pronunciation_dictionary_locators`` (§2.3).
Parsing is strict: :func:`parse_client_message` raises :class:`~xtts_core.errors.ProtocolError`
with one readable line (§1.3: unknown *fields* are ignored, unknown *shapes* and wrong types are
not).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeAlias, overload

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from xtts_core.protocol._base import _describe, _json_type, _load_object, _Model
from xtts_core.protocol.codes import (
    BOS_TEXT,
    CHUNK_LENGTH_MAX,
    CHUNK_LENGTH_MIN,
    DEFAULT_CHUNK_LENGTH_SCHEDULE,
    EOS_TEXT,
    invalid_message,
)

# --- shared pieces --------------------------------------------------------------------------------


def _none_to_false(value: object) -> object:
    return False if value is None else value


#: A JSON boolean flag; ``null`` means "not set" (§1.3: null values must be accepted).
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


class _ClientMessage(_Model):
    def to_json(self) -> str:
        """The message as a client sends it (wire key spellings; unset optional fields left out)."""
        return self.model_dump_json(by_alias=True, exclude_none=True)


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
    """``generation_config`` (§2.3, §2.5): when buffered text is spoken."""

    chunk_length_schedule: list[int] = Field(
        default_factory=lambda: list(DEFAULT_CHUNK_LENGTH_SCHEDULE)
    )
    """Characters to buffer before the 1st, 2nd, ... generation; the last value repeats. Entries
    are clamped into 50-500 and an empty or null list means the default (§2.5)."""

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
    """Not in the init schema, but the official SDK sends ``true`` here (§2.3, §2.4.2)."""


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


# --- parsing --------------------------------------------------------------------------------------


def _flag(obj: Mapping[str, Any], key: str) -> bool:
    value = obj.get(key)
    if value is None or value is False:
        return False
    if value is True:
        return True
    raise invalid_message(f"{key}: must be a boolean, got {_json_type(value)}")


def _text(obj: Mapping[str, Any]) -> str | None:
    value = obj.get("text")
    if value is not None and not isinstance(value, str):
        raise invalid_message(f"text: must be a string, got {_json_type(value)}")
    return value


def _stream_kind(obj: Mapping[str, Any]) -> type[StreamInputMessage]:
    text = _text(obj)
    if text is None:
        raise invalid_message("text: field required (every stream-input message carries text)")
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
        raise invalid_message(
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

    Unknown keys are ignored (§1.3); ``null`` stands for an absent optional field.

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
        raise invalid_message(_describe(exc)) from exc
