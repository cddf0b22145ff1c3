"""The wire vocabulary of xtts-stream, shared by balancer and broker (pydantic; no torch).

``docs/protocol.md`` is the normative description; the section numbers here are its sections.
Every public name is re-exported here; import them from ``xtts_core.protocol``:

- the websocket URL's query parameters, the same for both sockets (§2.2, §3):
  :class:`StreamInputQuery` (``query``);
- the ``output_format`` values we serve and their byte formats (§2.8): :class:`OutputFormat`,
  :class:`AudioFormat`, :func:`parse_output_format`, :func:`check_output_format` (``formats``);
- client messages of ``/v1/text-to-speech/{voice_id}/stream-input`` (§2.3: BOS, text, EOS,
  keep-alive) and of ``…/multi-stream-input`` (§3.1: open, text, flush, close context, keep-alive,
  close socket), parsed strictly by :func:`parse_client_message`, which raises
  :class:`~xtts_core.errors.ProtocolError` with one readable line (§1.3: unknown *fields* are
  ignored, unknown *shapes* and wrong types are not) (``client``);
- server messages: audio chunk with alignment (§2.4.1), final message (§2.4.2, §3.2), error
  message (§2.4.3), serialised by ``to_json()`` (``server``);
- where a client's API key is found, in the one order both services use (§1.2): :func:`request_api_key`,
  :func:`message_api_key`, :func:`bearer` (``auth``);
- the HTTP error bodies (§4.4): :class:`ErrorResponse`, :func:`error_body` and the validation
  shapes (``http``);
- close codes and every error code with its HTTP status (§5): :class:`CloseCode`,
  :class:`ErrorCode`, :data:`HTTP_STATUS`, :func:`http_status`, :func:`invalid_message`,
  :func:`close_reason`, and the protocol's constants (``codes``).

The model base and the JSON and error helpers the parsers share are private (``_base``).

What it does not hold: protocol *behaviour* (buffering, admission, timers) lives in the servers.
Every model ignores unknown keys (§1.3), so a server may subclass one to accept extras.
"""

from __future__ import annotations

from xtts_core.protocol.auth import bearer, message_api_key, request_api_key
from xtts_core.protocol.client import (
    CloseConnection,
    CloseContext,
    CloseSocket,
    FlushContext,
    GenerationConfig,
    InitialiseContext,
    InitializeConnection,
    KeepContextAlive,
    MultiStreamInputMessage,
    PronunciationDictionaryLocator,
    SendText,
    SendTextMulti,
    StreamInputMessage,
    VoiceSettings,
    parse_client_message,
)
from xtts_core.protocol.codes import (
    BOS_TEXT,
    CHUNK_LENGTH_MAX,
    CHUNK_LENGTH_MIN,
    DEFAULT_CHUNK_LENGTH_SCHEDULE,
    DEFAULT_INACTIVITY_TIMEOUT_S,
    EOS_TEXT,
    HTTP_STATUS,
    MAX_CLOSE_REASON_BYTES,
    MAX_CONTEXTS_PER_SOCKET,
    MAX_INACTIVITY_TIMEOUT_S,
    TRY_TRIGGER_MIN_CHARS,
    CloseCode,
    ErrorCode,
    close_reason,
    http_status,
    invalid_message,
)
from xtts_core.protocol.formats import (
    AudioFormat,
    OutputFormat,
    check_output_format,
    parse_output_format,
)
from xtts_core.protocol.http import (
    ErrorDetail,
    ErrorResponse,
    ValidationErrorItem,
    ValidationErrorResponse,
    error_body,
)
from xtts_core.protocol.openai import (
    OpenAIError,
    OpenAIErrorResponse,
    openai_error,
    openai_error_body,
    openai_status,
)
from xtts_core.protocol.query import StreamInputQuery
from xtts_core.protocol.server import (
    Alignment,
    AudioOutput,
    AudioOutputMulti,
    ErrorMessage,
    FinalOutput,
    FinalOutputMulti,
    ServerMessage,
    parse_server_message,
)

__all__ = [
    "BOS_TEXT",
    "CHUNK_LENGTH_MAX",
    "CHUNK_LENGTH_MIN",
    "DEFAULT_CHUNK_LENGTH_SCHEDULE",
    "DEFAULT_INACTIVITY_TIMEOUT_S",
    "EOS_TEXT",
    "HTTP_STATUS",
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
    "ErrorDetail",
    "ErrorMessage",
    "ErrorResponse",
    "FinalOutput",
    "FinalOutputMulti",
    "FlushContext",
    "GenerationConfig",
    "InitialiseContext",
    "InitializeConnection",
    "KeepContextAlive",
    "MultiStreamInputMessage",
    "OpenAIError",
    "OpenAIErrorResponse",
    "OutputFormat",
    "PronunciationDictionaryLocator",
    "SendText",
    "SendTextMulti",
    "ServerMessage",
    "StreamInputMessage",
    "StreamInputQuery",
    "ValidationErrorItem",
    "ValidationErrorResponse",
    "VoiceSettings",
    "bearer",
    "check_output_format",
    "close_reason",
    "error_body",
    "http_status",
    "invalid_message",
    "message_api_key",
    "openai_error",
    "openai_error_body",
    "openai_status",
    "parse_client_message",
    "parse_output_format",
    "parse_server_message",
    "request_api_key",
]
