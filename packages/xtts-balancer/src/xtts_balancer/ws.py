"""The ``/v1/text-to-speech/{voice_id}/stream-input`` websocket (docs/protocol.md §2).

A thin dialect over :class:`~xtts_balancer.ws_socket.SocketLink` (the socket's lifetime, frames
and errors) and :class:`~xtts_balancer.session.SpeechSession` (admission, slot, jobs, metrics).
What is stream-input's own: the first message (ElevenLabs BOS, or the original server's
``ttsInitRequest``) with the key it may carry and the settings it fixes -- a first message that
already carries text, as ElevenLabs' own guide sends it, is the opening message (key, settings)
and its text is spoken --, the message set of §2.3,
one :class:`~xtts_balancer.segments.TextBuffer`, and one generator task that speaks its segments
in order, holding a worker slot per utterance (see :meth:`StreamInput._generate`), and answers
EOS with the final message and close 1000.
"""

from __future__ import annotations

import asyncio
import json
import time

from pydantic import ValidationError
from starlette.websockets import WebSocket

from xtts_balancer.compat import BalancerQuery, TtsInitRequest
from xtts_balancer.errors import SessionError
from xtts_balancer.segments import TextBuffer
from xtts_balancer.ws_socket import SocketLink, SocketStream, input_timeout
from xtts_core.errors import ProtocolError
from xtts_core.protocol import (
    BOS_TEXT,
    DEFAULT_CHUNK_LENGTH_SCHEDULE,
    CloseCode,
    CloseConnection,
    GenerationConfig,
    InitializeConnection,
    SendText,
    StreamInputMessage,
    VoiceSettings,
    bearer,
    parse_client_message,
)
from xtts_core.text.limits import base_language

__all__ = ["StreamInput", "stream_input"]

_DEFAULT_VOICE_SETTINGS = VoiceSettings.model_validate({})
_DEFAULT_GENERATION_CONFIG = GenerationConfig.model_validate({})
#: Fields of the opening message that a first text message may carry beside its settings.
_OPENING_KEYS = ("xi_api_key", "xi-api-key", "authorization", "pronunciation_dictionary_locators")


async def stream_input(websocket: WebSocket) -> None:
    """The Starlette websocket endpoint."""
    dialect = StreamInput(websocket)
    await dialect.link.run(dialect.serve)


class StreamInput:
    """One stream-input socket; see the module docstring."""

    def __init__(self, websocket: WebSocket) -> None:
        self.link = SocketLink(websocket, "stream-input")
        self._segments: asyncio.Queue[str | None] = asyncio.Queue()
        self._busy = False
        self._ended = False
        self._voice_settings: VoiceSettings | None = None
        self._generation_config: GenerationConfig | None = None
        self._bos_seen = False

    # --- set-up ----------------------------------------------------------------------------------

    async def serve(self) -> None:
        link, session = self.link, self.link.session
        init, opening, message = _parse_first(await link.receive_first())
        if session.needs_key:
            key = init.xi_api_key or init.authorization if init is not None else None
            if opening is not None:
                key = opening.xi_api_key or opening.authorization
            session.authenticate(bearer(key))
        query = link.take_query(init.audio_format if init is not None else None)
        self._configure(query, init, opening)
        await link.prepare(self.language)
        self._stream = SocketStream(link, self._speed)
        link.start_generator(self._generate())
        if message is not None:  # the first message's text, or an EOS first
            self._apply(message)
        await link.receive_loop(self._handle_text, self._expire_idle)

    def _configure(
        self, query: BalancerQuery, init: TtsInitRequest | None,
        opening: InitializeConnection | None,
    ) -> None:  # fmt: skip
        init_config = init.generation_config if init is not None else None
        if opening is not None:
            self._take_bos(opening)
        settings = self._voice_settings
        if settings is not None and "speed" in settings.model_fields_set:
            self._speed = settings.speed
        else:
            self._speed = (init_config.speed if init_config else None) or query.speed or 1.0
        language = (
            query.language_code or query.language or (init_config.language if init_config else None)
        )
        self.language = base_language(language or self.link.settings.model.language)
        schedule = (
            (self._generation_config.chunk_length_schedule if self._generation_config else None)
            or (init_config.chunk_length_schedule if init_config else None)
            or list(DEFAULT_CHUNK_LENGTH_SCHEDULE)
        )
        self._buffer = TextBuffer(self.language, schedule, auto_mode=query.auto_mode)

    def _take_bos(self, message: InitializeConnection) -> None:
        self._bos_seen = True
        self._voice_settings = message.voice_settings
        self._generation_config = message.generation_config

    # --- receiving -------------------------------------------------------------------------------

    async def _handle_text(self, text: str) -> None:
        """Parse and apply one client message; after the end of input, messages are ignored."""
        if not self._ended:
            self._apply(_parse(text))

    def _expire_idle(self) -> None:
        """Fail the session when the client sent nothing for the inactivity timeout while
        nothing was being spoken (time spent generating is not client silence)."""
        link = self.link
        idle = not self._ended and not self._busy and self._segments.empty()
        if idle and time.monotonic() - link.last_activity > link.timeout_s:
            raise input_timeout(link.timeout_s)

    def _apply(self, message: StreamInputMessage) -> None:
        if isinstance(message, CloseConnection):
            self._ended = True
            self._queue(self._buffer.finish())
            self._segments.put_nowait(None)
            return
        if isinstance(message, InitializeConnection):  # a keep-alive, or a BOS after ttsInitRequest
            if not self._bos_seen:
                self._take_bos(message)
            else:
                self._check_unchanged(message.voice_settings, message.generation_config)
            return
        self._check_unchanged(message.voice_settings, message.generation_config)
        self.link.session.count_text(message.text)
        self._queue(
            self._buffer.add(
                message.text, flush=message.flush, try_trigger=message.try_trigger_generation
            )
        )

    def _check_unchanged(
        self, voice_settings: VoiceSettings | None, generation_config: GenerationConfig | None
    ) -> None:
        if (voice_settings is not None and voice_settings != (self._voice_settings or _DEFAULT_VOICE_SETTINGS)) or (
            generation_config is not None
            and generation_config != (self._generation_config or _DEFAULT_GENERATION_CONFIG)
        ):  # fmt: skip
            raise SessionError.invalid(
                "voice_settings field must be provided in the first message and then either be "
                "not provided or not change."
            )

    def _queue(self, segments: list[str]) -> None:
        for segment in segments:
            self._segments.put_nowait(segment)

    # --- generating ------------------------------------------------------------------------------

    async def _generate(self) -> None:
        """The generator task: speak the segments in order; EOS ends the stream.

        An utterance (segments queued back to back) holds a worker slot from its first segment
        to its last: with ``queue.slot_lease: utterance`` the slot is given back as soon as
        nothing is left to say, so a socket idle between turns holds none, and its next turn
        queues for a slot like any newcomer.
        """
        while True:
            segment = await self._segments.get()
            if segment is None:
                self.link.release_idle_slot()
                await self._stream.finish()
                await self.link.close(CloseCode.NORMAL)
                return
            if not self._busy:
                self._stream.pacer.reset()  # the real-time clock restarts with every burst
            self._busy = True
            try:
                await self._stream.speak(segment, self.language)
            finally:
                self._busy = not self._segments.empty()
                if not self._busy:
                    self.link.release_idle_slot()
                    self.link.last_activity = time.monotonic()  # silence counts from here


def _parse_first(
    text: str,
) -> tuple[TtsInitRequest | None, InitializeConnection | None, SendText | CloseConnection | None]:
    """The first frame as ``(ttsInitRequest, opening message, message to apply now)``: a BOS
    opens; a text message opens with the key and settings it carries and is applied; an EOS
    is only applied."""
    try:
        return TtsInitRequest.model_validate_json(text), None, None
    except ValidationError:
        pass
    message = _parse(text)
    if isinstance(message, InitializeConnection):
        return None, message, None
    if isinstance(message, CloseConnection):
        return None, None, message
    opening = _parse(json.dumps({**_opening_fields(text), "text": BOS_TEXT}))
    assert isinstance(opening, InitializeConnection)
    settings = {"voice_settings": message.voice_settings,
                "generation_config": message.generation_config}  # fmt: skip
    return None, opening.model_copy(update=settings), message


def _opening_fields(text: str) -> dict[str, object]:
    """The BOS-only fields (key, dictionaries) of a first message that carries text."""
    fields = json.loads(text)
    return {key: fields[key] for key in _OPENING_KEYS if key in fields}


def _parse(text: str) -> StreamInputMessage:
    try:
        return parse_client_message(text)
    except ProtocolError as exc:
        raise SessionError.from_protocol(exc) from None
