"""Server messages of both sockets and :func:`parse_server_message` (§2.4, §3.2, §2.4).

Audio chunk with alignment (§2.4.1, §2.4.1 key spelling), final message (§2.4.2, §3.2), error
message (§2.4.3), serialised as the §2.4 reply templates by ``to_json()``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal, TypeAlias

from pydantic import (
    AliasChoices,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from typing_extensions import Self

from xtts_core.errors import ProtocolError
from xtts_core.protocol._base import _describe, _load_object, _Model
from xtts_core.protocol.codes import (
    MAX_CONTEXTS_PER_SOCKET,
    CloseCode,
    ErrorCode,
    close_reason,
    invalid_message,
)

# --- server messages (§2.4, §3.2, §2.4) ------------------------------------------------------------


class _ServerMessage(_Model):
    def to_json(self) -> str:
        """The message in the §2.4 reply template (wire key spellings, nulls kept)."""
        return self.model_dump_json(by_alias=True)


class Alignment(_Model):
    """Character timings of one audio chunk (§2.4.1): ``chars``, ``charStartTimesMs``,
    ``charDurationsMs``, of equal length, in ms from the start of *this* chunk's audio.

    Serialised with ``charDurationsMs`` (what the real service sends, §2.4.1); the spec's
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
    """An audio chunk of a stream-input socket (``AudioOutput``, §2.4.1, §2.4)."""

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

    Sent only in reply to EOS; then the server closes with 1000. Serialised in the §2.4 form with
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


class _ContextReply(_ServerMessage):
    """A reply of one multi-stream context: serialised with ``contextId`` (which pipecat
    requires) and its snake-case echoes (which livekit and the docs' own sample read)."""

    context_id: str = Field(
        validation_alias=AliasChoices("contextId", "context_id"), serialization_alias="contextId"
    )
    """The context this reply belongs to."""

    def _snake_echoes(self) -> dict[str, Any]:
        return {"context_id": self.context_id}

    @model_serializer(mode="wrap")
    def _echo_snake_case(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if info.by_alias:
            data.update(self._snake_echoes())
        return data


class AudioOutputMulti(AudioOutput, _ContextReply):
    """An audio chunk of one multi-stream context (``AudioOutputMulti``, §3.2, §2.4).

    Serialised with ``contextId`` and ``context_id`` both set; either is accepted on input.
    """


class FinalOutputMulti(_ContextReply):
    """``{"isFinal": true, "contextId": "c1"}``: a context has finished closing (§3.2, §2.4).

    Serialised as ``{"isFinal": true, "contextId": id, "context_id": id, "is_final": true}``: the
    snake-case echoes serve clients that read those spellings (livekit; the docs' own sample).
    """

    is_final: Literal[True] = Field(True, validation_alias="isFinal", serialization_alias="isFinal")
    """Always true."""

    def _snake_echoes(self) -> dict[str, Any]:
        return {"context_id": self.context_id, "is_final": True}


class ErrorMessage(_ServerMessage):
    """``{"message", "error", "code"}``, sent before closing on an error (§2.4.3, §2.4, §5).

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

# --- parsing --------------------------------------------------------------------------------------


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
        raise invalid_message(_describe(exc)) from exc
