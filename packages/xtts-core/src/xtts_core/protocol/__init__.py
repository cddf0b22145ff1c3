"""ElevenLabs text-to-speech websocket messages, shared by balancer and broker (pydantic; no torch).

What this package holds, with the sections of ``shared/spec/elevenlabs-protocol.md`` it follows
(every public name is re-exported here; import them from ``xtts_core.protocol``):

- the websocket URL's query parameters, the same for both sockets (§2.2, §3):
  :class:`StreamInputQuery` (``query``);
- the ``output_format`` values we serve and their byte formats (§2.8, §8.5, §10.7):
  :class:`OutputFormat`, :class:`AudioFormat`, :func:`parse_output_format` (``formats``);
- client messages of ``/v1/text-to-speech/{voice_id}/stream-input`` (§2.3: BOS, text, EOS,
  keep-alive) and of ``…/multi-stream-input`` (§3.1: open, text, flush, close context, keep-alive,
  close socket), parsed strictly by :func:`parse_client_message`, which raises
  :class:`~xtts_core.errors.ProtocolError` with one readable line (§9.2: unknown *fields* are
  ignored, unknown *shapes* and wrong types are not) (``client``);
- server messages: audio chunk with alignment (§2.4.1, §2.5.3 key spelling), final message (§2.4.2,
  §3.2), error message (§2.4.3), serialised as the §7 reply templates by ``to_json()`` (``server``);
- close codes (§2.4.3, §9.4; original-spec.md §1.12 for 1001/1003/1011/1013): :class:`CloseCode`
  (``codes``, with :class:`ErrorCode` and :func:`close_reason`);
- the protocol's constants: default chunk schedule and its bounds (§2.3, §2.5.1), the
  ``try_trigger_generation`` threshold (§2.3), inactivity limits (§2.6), contexts per socket (§3)
  (``codes``).

The model base and the JSON and error helpers the parsers share are private (``_base``).

What it does not hold: protocol *behaviour* (buffering, auth, timers) lives in the servers; HTTP
bodies (§4) come with the API-surface issue. Every model ignores unknown keys (§9.2), so a server
may subclass one to accept extras (e.g. the original's query parameters, original-spec.md §1.2).
"""

from __future__ import annotations

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
    MAX_CLOSE_REASON_BYTES,
    MAX_CONTEXTS_PER_SOCKET,
    MAX_INACTIVITY_TIMEOUT_S,
    TRY_TRIGGER_MIN_CHARS,
    CloseCode,
    ErrorCode,
    close_reason,
)
from xtts_core.protocol.formats import AudioFormat, OutputFormat, parse_output_format
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
