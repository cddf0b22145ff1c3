"""The ``/v1/text-to-speech/{voice_id}/stream-input`` websocket (docs/protocol.md §2).

One :class:`StreamInputSession` per socket, in this order: refuse while draining; check a key
sent with the handshake (in broker mode instead: the broker's signature); read the first message (ElevenLabs BOS, or the original's
``ttsInitRequest``) and check a key sent in it; validate the query (an unserved
``output_format`` is an error, not a crash); take a worker slot (FIFO queue, 1013 when full or
timed out); check the voice and language; then read the socket and generate at the same time.

The receive loop is the session's main task and never waits on generation, so a disconnect is
seen at once (it cancels the running job and frees the slot) and the inactivity timer counts only
client silence while nothing is being generated. A generator task turns segments from
:class:`~xtts_balancer.segments.TextBuffer` into jobs and their chunks into audio messages with
alignment (:mod:`xtts_balancer.alignment`, sent by :mod:`xtts_balancer.sending`). A job that
sends nothing for ``workers.stall_timeout_s`` gets its worker killed. Every failure is a :class:`SessionError`: the error
JSON, then a close with its code (§2.4.3); the server stays up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import MutableMapping
from typing import Any

import numpy as np
from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from xtts_balancer.alignment import SegmentAligner
from xtts_balancer.broker import verify_stream
from xtts_balancer.compat import BalancerQuery, TtsInitRequest
from xtts_balancer.encoders import StreamEncoder, make_encoder
from xtts_balancer.errors import SessionError
from xtts_balancer.jobs import acquire_slot, admit_key, job_events, new_job, record_segment
from xtts_balancer.models_api import note_model_id
from xtts_balancer.pool import Lease
from xtts_balancer.segments import TextBuffer
from xtts_balancer.sending import AudioSender, Pacer
from xtts_balancer.state import BalancerState
from xtts_balancer.worker.ipc import Chunk
from xtts_core.aio import wait_within
from xtts_core.cluster import OriginError
from xtts_core.errors import ProtocolError
from xtts_core.protocol import (
    DEFAULT_CHUNK_LENGTH_SCHEDULE,
    AudioOutput,
    CloseCode,
    CloseConnection,
    ErrorCode,
    ErrorMessage,
    FinalOutput,
    GenerationConfig,
    InitializeConnection,
    SendText,
    StreamInputMessage,
    VoiceSettings,
    bearer,
    close_reason,
    parse_client_message,
    request_api_key,
)
from xtts_core.text.limits import base_language


__all__ = ["StreamInputSession", "stream_input"]

logger = logging.getLogger(__name__)

#: How often the receive loop wakes to check the inactivity timer.
TICK_S = 0.2
_DEFAULT_VOICE_SETTINGS = VoiceSettings.model_validate({})
_DEFAULT_GENERATION_CONFIG = GenerationConfig.model_validate({})


async def stream_input(websocket: WebSocket) -> None:
    """The Starlette websocket endpoint."""
    await StreamInputSession(websocket, websocket.app.state.balancer).run()


class _ClientGoneError(Exception):
    """The client closed the socket."""


class StreamInputSession:
    """One stream-input socket; see the module docstring."""

    def __init__(self, websocket: WebSocket, state: BalancerState) -> None:
        self.ws = websocket
        self.state = state
        self.settings = state.settings
        self.voice_id = websocket.path_params["voice_id"]
        self._closed = False
        self._lease: Lease | None = None
        self._identity: str | None = None
        self._gen_task: asyncio.Task[None] | None = None
        self._segments: asyncio.Queue[str | None] = asyncio.Queue()
        self._busy = False
        self._ended = False
        self._going_away = False
        self._last_activity = time.monotonic()
        self._text_chars = 0
        self._task: asyncio.Task[Any] | None = None
        self.session_id = ""  # the broker's session id (broker mode), for the logs
        # Fixed by the first message (see _configure).
        self.speed = 1.0
        self.language = base_language(self.settings.model.language)
        self._voice_settings: VoiceSettings | None = None
        self._generation_config: GenerationConfig | None = None
        self._bos_seen = False

    # --- lifecycle -------------------------------------------------------------------------------

    async def run(self) -> None:
        self._task = asyncio.current_task()
        await self.ws.accept()
        self.state.sessions.add(self)
        metrics = self.state.metrics
        metrics.sessions_active.inc()
        metrics.sessions_total.inc()
        failure: SessionError | None = None
        client_gone = False
        try:
            await self._serve()
        except SessionError as exc:
            failure = exc
        except _ClientGoneError:
            client_gone = True
        except asyncio.CancelledError:
            if not self._going_away:
                raise
            if self._task is not None:
                self._task.uncancel()
            failure = SessionError(
                "The server is shutting down.", ErrorCode.SHUTTING_DOWN, CloseCode.GOING_AWAY
            )
        except Exception:  # a bug: answer like any error, keep the server up
            logger.exception("session for voice %r failed", self.voice_id)
            failure = SessionError(
                "Internal server error.", ErrorCode.INTERNAL_ERROR, CloseCode.INTERNAL_ERROR
            )
        finally:
            await self._stop_generator()
            if failure is not None:
                await self._fail(failure)
            self._release()
            if self._closed and not client_gone:
                await self._drain_until_client_closes()
            metrics.sessions_active.dec()
            self.state.sessions.discard(self)

    def going_away(self) -> None:
        """Close this session with 1001 (the shutdown grace period is over)."""
        self._going_away = True
        if self._task is not None:
            self._task.cancel()

    def _release(self) -> None:
        if self._lease is not None:
            self.state.pool.release(self._lease)
            self._lease = None
        if self._identity is not None:
            self.state.key_sessions[self._identity] -= 1
            self._identity = None

    async def _stop_generator(self) -> None:
        task, self._gen_task = self._gen_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, SessionError, _ClientGoneError):
                await task

    async def _fail(self, exc: SessionError) -> None:
        self.state.metrics.errors.labels(exc.error).inc()
        logger.info(
            "session=%s voice=%r: %s (%s)", self.session_id or "-", self.voice_id, exc.message,
            exc.error,
        )  # fmt: skip
        if not self._closed:
            with contextlib.suppress(Exception):  # the client may be gone already
                await self.ws.send_text(exc.to_message().to_json())
        await self._close(exc.code, close_reason(exc.message))

    async def _drain_until_client_closes(self) -> None:
        """Read what the client still sends until it answers our close (for at most a second).

        Closing the TCP connection while client frames sit unread makes the kernel reset it,
        and a reset can destroy our error message before the client has read it.
        """
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                while (await self.ws.receive())["type"] != "websocket.disconnect":
                    pass

    async def _close(self, code: int, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason)

    # --- set-up ----------------------------------------------------------------------------------

    async def _serve(self) -> None:
        state = self.state
        query_params = dict(self.ws.query_params)
        self._admit(query_params)
        first = await self._receive_first(_early_timeout(query_params))
        init, message = self._parse_first(first)
        if self._identity is None and state.broker is None:
            key = init.xi_api_key or init.authorization if init is not None else None
            if isinstance(message, InitializeConnection):
                key = message.xi_api_key or message.authorization
            self._authenticate(key)
        query = self._parse_query(query_params, init)
        self._configure(query, init, message)
        self._check_voice()
        self._lease = await self._acquire()
        self._check_voice()
        assert self.state.supervisor.sample_rate is not None
        self._encoder = make_encoder(query.audio_format, self.state.supervisor.sample_rate)
        self._gen_task = asyncio.create_task(self._generate())
        if isinstance(message, SendText | CloseConnection):  # text without a BOS first
            self._apply(message)
        await self._receive_loop()

    def _admit(self, query_params: dict[str, str]) -> None:
        """Refuse while draining or over ``limits.max_sessions``; check the handshake's key (in
        broker mode: the broker's signature). A key sent in the first message is checked later."""
        state = self.state
        if state.draining:
            raise SessionError(
                "The server is shutting down.", ErrorCode.SHUTTING_DOWN, CloseCode.GOING_AWAY
            )
        limit = self.settings.limits.max_sessions
        if limit is not None and len(state.sessions) > limit:
            raise SessionError(
                f"Too many open sessions (limit {limit}); please try again later.",
                ErrorCode.SERVER_BUSY, CloseCode.TRY_AGAIN_LATER,
            )  # fmt: skip
        if state.broker is not None:  # the broker authenticated the client; prove it was it
            self._verify_origin()
        else:
            handshake_key = request_api_key(self.ws.headers, query_params)
            if handshake_key is not None:
                self._authenticate(handshake_key)

    def _verify_origin(self) -> None:
        try:
            self.session_id = verify_stream(
                self.settings, self.state.replay_guard, self.ws.scope["path"], self.ws.headers
            )
        except OriginError as exc:
            raise SessionError(
                f"This balancer is broker-managed; connect through the broker ({exc}).",
                ErrorCode.INVALID_API_KEY,
            ) from None

    def _authenticate(self, key: str | None) -> None:
        """Admit ``key`` (a ``Bearer`` prefix is dropped, as the first message may carry one)."""
        self._identity = admit_key(self.state, bearer(key))

    async def _receive_first(self, timeout: float) -> str:
        try:
            message = await wait_within(self.ws.receive(), timeout)
        except asyncio.TimeoutError:
            raise _input_timeout(timeout) from None
        return self._frame_text(message)

    def _parse_first(self, text: str) -> tuple[TtsInitRequest | None, StreamInputMessage | None]:
        try:
            init = TtsInitRequest.model_validate_json(text)
        except ValidationError:
            init = None
        if init is not None:
            return init, None
        try:
            return None, parse_client_message(text)
        except ProtocolError as exc:
            raise SessionError.from_protocol(exc) from None

    def _parse_query(self, params: dict[str, str], init: TtsInitRequest | None) -> BalancerQuery:
        if init is not None and init.audio_format:
            params["output_format"] = init.audio_format
        params.setdefault("output_format", self.settings.stream.default_output_format.value)
        try:
            query = BalancerQuery.parse(params)
        except ProtocolError as exc:
            raise SessionError.from_protocol(exc) from None
        assert isinstance(query, BalancerQuery)
        return query

    def _configure(
        self, query: BalancerQuery, init: TtsInitRequest | None, message: StreamInputMessage | None
    ) -> None:
        stream = self.settings.stream
        init_config = init.generation_config if init is not None else None
        if isinstance(message, InitializeConnection):
            self._take_bos(message)
        settings = self._voice_settings
        if settings is not None and "speed" in settings.model_fields_set:
            self.speed = settings.speed
        else:
            self.speed = (init_config.speed if init_config else None) or query.speed or 1.0
        language = (
            query.language_code or query.language or (init_config.language if init_config else None)
        )
        self.language = base_language(language or self.settings.model.language)
        schedule = (
            (self._generation_config.chunk_length_schedule if self._generation_config else None)
            or (init_config.chunk_length_schedule if init_config else None)
            or list(DEFAULT_CHUNK_LENGTH_SCHEDULE)
        )
        note_model_id(query.model_id)
        self.query = query
        self._timeout_s = query.inactivity_timeout
        self._chunk_codes = query.stream_chunk_size or stream.chunk_codes
        self._buffer = TextBuffer(self.language, schedule, auto_mode=query.auto_mode)
        self._aligner = SegmentAligner(stream.ms_per_char)

    def _take_bos(self, message: InitializeConnection) -> None:
        self._bos_seen = True
        self._voice_settings = message.voice_settings
        self._generation_config = message.generation_config

    def _check_voice(self) -> None:
        supervisor = self.state.supervisor
        if supervisor.voices and self.voice_id not in supervisor.voices:
            raise SessionError(
                f"A voice with voice_id {self.voice_id!r} was not found.",
                ErrorCode.VOICE_NOT_FOUND,
            )
        if supervisor.languages and self.language not in supervisor.languages:
            raise SessionError.invalid(
                f"language {self.language!r} is not supported; supported: "
                + ", ".join(sorted(supervisor.languages))
            )

    async def _acquire(self) -> Lease:
        lease = await acquire_slot(self.state)
        self._last_activity = time.monotonic()  # waiting for a slot is not client silence
        return lease

    # --- receiving -------------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        """Read client frames until the generator task ends, checking for idleness every tick.

        Shared by the multi-context session, which overrides :meth:`_handle_text` and
        :meth:`_expire_idle`: the loop itself (one pending receive raced against the generator,
        the generator's error re-raised, the pending receive cancelled on exit) is the same.
        """
        assert self._gen_task is not None
        receive: asyncio.Task[MutableMapping[str, Any]] | None = None
        try:
            while True:
                if receive is None:
                    receive = asyncio.create_task(self.ws.receive())
                done, _ = await asyncio.wait(
                    {receive, self._gen_task}, timeout=TICK_S, return_when=asyncio.FIRST_COMPLETED
                )
                if self._gen_task in done:
                    self._gen_task.result()  # raises the generator's SessionError
                    return  # the stream ended normally (final message sent, socket closed)
                if receive in done:
                    message, receive = receive.result(), None
                    self._last_activity = time.monotonic()
                    await self._handle_text(self._frame_text(message))
                self._expire_idle()
        finally:
            if receive is not None:
                receive.cancel()

    async def _handle_text(self, text: str) -> None:
        """Parse and apply one client message; after the end of input, messages are ignored."""
        if not self._ended:
            self._apply(self._parse(text))

    def _expire_idle(self) -> None:
        """Fail the session when the client sent nothing for the inactivity timeout while
        nothing was being spoken (time spent generating is not client silence)."""
        idle = not self._ended and not self._busy and self._segments.empty()
        if idle and time.monotonic() - self._last_activity > self._timeout_s:
            raise _input_timeout(self._timeout_s)

    def _frame_text(self, message: MutableMapping[str, Any]) -> str:
        if message["type"] == "websocket.disconnect":
            raise _ClientGoneError
        text = message.get("text")
        if text is None:
            raise SessionError(
                "Binary frames are not supported; send JSON in text frames.",
                ErrorCode.UNSUPPORTED_DATA, CloseCode.UNSUPPORTED_DATA,
            )  # fmt: skip
        limit = self.settings.limits.max_message_bytes
        if len(text) > limit // 4 and len(text.encode("utf-8")) > limit:
            raise SessionError(
                f"Message larger than {limit} bytes.",
                ErrorCode.MESSAGE_TOO_BIG, CloseCode.MESSAGE_TOO_BIG,
            )  # fmt: skip
        return str(text)

    def _parse(self, text: str) -> StreamInputMessage:
        try:
            return parse_client_message(text)
        except ProtocolError as exc:
            raise SessionError.from_protocol(exc) from None

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
        self._count_text(message.text)
        self._queue(
            self._buffer.add(
                message.text, flush=message.flush, try_trigger=message.try_trigger_generation
            )
        )

    def _count_text(self, text: str) -> None:
        """Count ``text`` against ``limits.max_text_chars`` (all the session's text together)."""
        self._text_chars += len(text)
        limit = self.settings.limits.max_text_chars
        if self._text_chars > limit:
            raise SessionError(
                f"Too much text: a session may send at most {limit} characters.",
                ErrorCode.TEXT_TOO_LONG,
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
        """The generator task: :meth:`_generate_segments` (which the multi-context session
        overrides with its round-robin scheduler), a client that left turned into one error."""
        try:
            await self._generate_segments()
        except WebSocketDisconnect:  # the client left while we were sending
            raise _ClientGoneError from None

    async def _generate_segments(self) -> None:
        pacer = Pacer(self.settings.stream.pacing_lead_ms if self.settings.stream.pacing else None)
        while True:
            segment = await self._segments.get()
            if segment is None:
                tail = self._encoder.finish()  # a compressed stream's last frames
                if tail:
                    await self.ws.send_text(AudioOutput.from_audio(tail).to_json())
                await self.ws.send_text(FinalOutput.model_validate({}).to_json())
                await self._close(CloseCode.NORMAL)
                return
            if not self._busy:
                pacer.reset()  # the real-time clock restarts with every burst of speech
            self._busy = True
            try:
                await self._speak(
                    segment, pacer, encoder=self._encoder, aligner=self._aligner, speed=self.speed
                )
            finally:
                self._busy = not self._segments.empty()
                if not self._busy:
                    self._last_activity = time.monotonic()  # silence counts from here

    async def _speak(
        self, text: str, pacer: Pacer, *, encoder: StreamEncoder, aligner: SegmentAligner,
        speed: float, context_id: str | None = None,
    ) -> None:  # fmt: skip
        """Generate one segment on the session's slot and send its audio through ``encoder``
        (a multi-stream context passes its own encoder, aligner, speed and ``context_id``)."""
        assert self._lease is not None
        job = new_job(
            self.state, text, language=self.language, voice_id=self.voice_id, speed=speed,
            seed=self.query.seed, chunk_codes=self._chunk_codes,
        )  # fmt: skip
        t0 = time.monotonic()
        aligner.start(text + " ", speed)
        sender = AudioSender(
            self.ws, encoder, aligner, pacer, self.settings.stream.max_chunk_ms,
            self.state.metrics.time_to_first_audio, context_id=context_id,
        )  # fmt: skip
        async with contextlib.aclosing(job_events(self.state, self._lease, job)) as events:
            async for event in events:
                if isinstance(event, Chunk):
                    await sender.push(encoder.encode(np.frombuffer(event.samples, np.float32)))
                    continue
                await sender.finish(encoder.end_segment())
                record_segment(
                    self.state, event, started=t0, first_audio_s=sender.first_audio_s,
                    audio_ms=sender.audio_ms,
                )  # fmt: skip


def _early_timeout(params: dict[str, str]) -> float:
    """The inactivity timeout for the first message, before the query is validated."""
    try:
        value = float(params.get("inactivity_timeout", ""))
    except ValueError:
        return 20.0
    return min(max(value, 1.0), 180.0) if math.isfinite(value) else 20.0


def _input_timeout(timeout_s: float) -> SessionError:
    error = ErrorMessage.input_timeout(int(timeout_s))
    return SessionError(error.message, error.error, error.code)
