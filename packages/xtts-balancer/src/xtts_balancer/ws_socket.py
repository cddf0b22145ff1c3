"""The websocket side every socket dialect shares: its lifetime, its frames, its errors.

A dialect (:mod:`xtts_balancer.ws` for stream-input, :mod:`xtts_balancer.ws_multi` for
multi-stream-input) owns a :class:`SocketLink` and gives :meth:`SocketLink.run` its ``serve``
coroutine. The link accepts the socket, opens the :class:`~xtts_balancer.session.SpeechSession`,
admits the handshake (draining, ``limits.max_sessions``, the key or the broker's signature),
and turns however ``serve`` ends into the protocol's ending: a :class:`SessionError` is sent as
the error JSON, then a close with its code (docs/protocol.md §2.4.3); a client that left ends
quietly; a bug is ``internal_error`` and 1011; the drain's cancellation is ``shutting_down`` and
1001. The server stays up whatever happens.

:meth:`SocketLink.receive_loop` is the socket's main loop: it reads frames while the dialect's
generator task runs and never waits on generation, so a disconnect is seen at once (it cancels
the running job and frees the slot) and the dialect's inactivity check runs every tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from xtts_balancer.alignment import SegmentAligner
from xtts_balancer.compat import BalancerQuery
from xtts_balancer.encoders import make_encoder
from xtts_balancer.errors import SessionError
from xtts_balancer.models_api import note_model_id
from xtts_balancer.sending import AudioOut, Pacer
from xtts_balancer.session import SpeechSession, shutting_down
from xtts_balancer.state import balancer_state
from xtts_core.aio import wait_within
from xtts_core.errors import ProtocolError
from xtts_core.protocol import (
    Alignment,
    AudioOutput,
    AudioOutputMulti,
    CloseCode,
    ErrorCode,
    ErrorMessage,
    FinalOutput,
    FinalOutputMulti,
    close_reason,
    request_api_key,
)
from xtts_core.single_use import SINGLE_USE_TOKEN_PARAM

_AudioMessage = AudioOutput | AudioOutputMulti

__all__ = [
    "TICK_S",
    "ClientGoneError",
    "SocketLink",
    "SocketStream",
    "early_timeout",
    "input_timeout",
]

logger = logging.getLogger(__name__)

#: How often the receive loop wakes to check the inactivity timer.
TICK_S = 0.2


class ClientGoneError(Exception):
    """The client closed the socket."""


class SocketLink:
    """One accepted websocket and its speech session (see the module docstring)."""

    def __init__(self, websocket: WebSocket, kind: str) -> None:
        self.ws = websocket
        self.session = SpeechSession(
            balancer_state(websocket), websocket.path_params["voice_id"], kind
        )
        self.settings = self.session.settings
        self.query_params = dict(websocket.query_params)
        self.last_activity = time.monotonic()
        """When the client last sent something, or the socket last stopped speaking."""
        self._closed = False
        self._generator: asyncio.Task[None] | None = None

    async def run(self, serve: Callable[[], Awaitable[None]]) -> None:
        """Serve the socket with ``serve`` and end it as the protocol says."""
        session = self.session
        session.task = asyncio.current_task()
        await self.ws.accept()
        session.open()
        failure: SessionError | None = None
        client_gone = False
        try:
            session.admit(
                "GET", self.ws.scope["path"], self.ws.headers, self.handshake_key(),
                self.query_params.get(SINGLE_USE_TOKEN_PARAM),
            )  # fmt: skip
            await serve()
        except SessionError as exc:
            failure = exc
        except ClientGoneError:
            client_gone = True
        except asyncio.CancelledError:
            if not session.gone_away:
                raise
            if session.task is not None:
                session.task.uncancel()
            failure = shutting_down()
        except Exception:  # a bug: answer like any error, keep the server up
            logger.exception("%s failed", session.tag)
            failure = SessionError(
                "Internal server error.", ErrorCode.INTERNAL_ERROR, CloseCode.INTERNAL_ERROR
            )
        finally:
            await self._stop_generator()
            if failure is not None:
                await self.fail(failure)
            if session.record.close_code is None:
                session.record.close_code = 1006  # neither side sent a close frame
            session.close()
            if self._closed and not client_gone:
                await self._drain_until_client_closes()

    def handshake_key(self) -> str | None:
        """The key sent with the handshake (headers or query), if any."""
        return request_api_key(self.ws.headers, self.query_params)

    async def fail(self, exc: SessionError) -> None:
        """Send ``exc`` as the protocol's error message, then close with its code."""
        self.session.record_failure(exc)
        if not self._closed:
            with contextlib.suppress(Exception):  # the client may be gone already
                await self.ws.send_text(exc.to_message().to_json())
        await self.close(exc.code, close_reason(exc.message))

    async def close(self, code: int, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        self.session.record.close_code = int(code)
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason)

    async def send(self, text: str) -> None:
        """Send one JSON text frame; a client that left is :class:`ClientGoneError`."""
        try:
            await self.ws.send_text(text)
        except WebSocketDisconnect as exc:
            self.session.record.close_code = exc.code
            raise ClientGoneError from None

    async def _drain_until_client_closes(self) -> None:
        """Read what the client still sends until it answers our close (for at most a second).

        Closing the TCP connection while client frames sit unread makes the kernel reset it,
        and a reset can destroy our error message before the client has read it.
        """
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                while (await self.ws.receive())["type"] != "websocket.disconnect":
                    pass

    # --- set-up ------------------------------------------------------------------------------------

    def take_query(self, output_format: str | None = None) -> BalancerQuery:
        """Validate the query (``output_format`` overrides the URL's, as a ``ttsInitRequest``
        may); the socket's seed, chunk size, inactivity timeout, SSML parsing and text
        normalisation come from it."""
        params = dict(self.query_params)
        if output_format:
            params["output_format"] = output_format
        params.setdefault("output_format", self.settings.stream.default_output_format.value)
        try:
            query = BalancerQuery.parse(params)
        except ProtocolError as exc:
            raise SessionError.from_protocol(exc) from None
        assert isinstance(query, BalancerQuery)
        note_model_id(query.model_id)
        self.session.record.output_format = params["output_format"]
        self.session.ssml = query.enable_ssml_parsing
        self.session.normalize_text = query.apply_text_normalization != "off"
        self.query = query
        self.timeout_s = float(query.inactivity_timeout)
        self.chunk_codes = query.stream_chunk_size or self.settings.stream.chunk_codes
        return query

    async def prepare(self, language: str) -> None:
        """Check the voice; with ``queue.slot_lease: session`` take the socket's slot now."""
        self.session.check_voice(language)
        if self.settings.queue.slot_lease == "session":
            await self.hold_slot(language)

    def release_idle_slot(self) -> None:
        """Nothing is left to say: give the slot back (``queue.slot_lease: utterance``)."""
        if self.settings.queue.slot_lease == "utterance":
            self.session.release_slot()

    async def hold_slot(self, language: str) -> None:
        """Hold a worker slot for an utterance (no-op while one is held): the socket takes its
        turn in the FIFO queue, and waiting is not client silence. The dialect gives the slot
        back (:meth:`release_idle_slot`) as soon as it has nothing left to say."""
        if self.session.has_slot:
            return
        await self.session.acquire_slot()
        self.session.check_voice(language)  # the first worker may have just become ready
        self.last_activity = time.monotonic()

    # --- receiving -------------------------------------------------------------------------------

    async def receive_first(self) -> str:
        """The first message's text, within the query's inactivity timeout."""
        timeout = early_timeout(self.query_params)
        try:
            message = await wait_within(self.ws.receive(), timeout)
        except asyncio.TimeoutError:
            raise input_timeout(timeout) from None
        return self.frame_text(message)

    def start_generator(self, generate: Coroutine[Any, Any, None]) -> None:
        """Run the dialect's generator task beside the receive loop (stopped when the socket
        ends, however it ends)."""
        self._generator = asyncio.create_task(generate)

    async def _stop_generator(self) -> None:
        task, self._generator = self._generator, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, SessionError, ClientGoneError):
                await task

    async def receive_loop(
        self, on_text: Callable[[str], Awaitable[None]], expire_idle: Callable[[], None]
    ) -> None:
        """Read client frames until the generator task ends, calling ``expire_idle`` every
        tick; the generator's error is re-raised."""
        generator = self._generator
        assert generator is not None
        receive: asyncio.Task[MutableMapping[str, Any]] | None = None
        try:
            while True:
                if receive is None:
                    receive = asyncio.create_task(self.ws.receive())
                done, _ = await asyncio.wait(
                    {receive, generator}, timeout=TICK_S, return_when=asyncio.FIRST_COMPLETED
                )
                if generator in done:
                    generator.result()  # raises the generator's SessionError
                    return  # the stream ended normally (final message sent, socket closed)
                if receive in done:
                    message, receive = receive.result(), None
                    self.last_activity = time.monotonic()
                    await on_text(self.frame_text(message))
                expire_idle()
        finally:
            if receive is not None:
                receive.cancel()

    def frame_text(self, message: MutableMapping[str, Any]) -> str:
        """A received frame's text; refuses binary and over-long frames (§1.3)."""
        if message["type"] == "websocket.disconnect":
            self.session.record.close_code = int(message.get("code") or 1005)  # 1005: none given
            raise ClientGoneError
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


class SocketStream:
    """One stream's audio out on a socket: the socket's only one, or one context's."""

    def __init__(self, link: SocketLink, speed: float, context_id: str | None = None) -> None:
        stream = link.settings.stream
        self.pacer = Pacer(stream.pacing_lead_ms if stream.pacing else None)
        self.speed = speed
        self.context_id = context_id
        self._link = link
        self._out: AudioOut | None = None

    @property
    def out(self) -> AudioOut:
        """The stream's encoder and aligner, made at its first segment (when a worker is warm,
        so the model's sample rate is known)."""
        if self._out is None:
            state, stream = self._link.session.state, self._link.settings.stream
            assert state.supervisor.sample_rate is not None
            encoder = make_encoder(self._link.query.audio_format, state.supervisor.sample_rate)
            aligner = SegmentAligner(stream.ms_per_char)
            first_audio = state.metrics.time_to_first_audio
            self._out = AudioOut(encoder, aligner, first_audio, stream.max_chunk_ms)
        return self._out

    async def speak(self, text: str, language: str) -> None:
        """Speak one segment and send its audio messages, paced (§2.4.1, §3.2)."""
        link = self._link
        await link.hold_slot(language)
        pieces = link.session.speak(
            text, self.out, language=language, speed=self.speed, seed=link.query.seed,
            chunk_codes=link.chunk_codes,
        )  # fmt: skip
        async for piece in pieces:
            await self.pacer.wait(piece.duration_ms)
            await link.send(self._audio(piece.audio, piece.alignment).to_json())

    async def finish(self, *, tail: bool = True) -> None:
        """The stream's last audio (unless ``tail`` is off) and its final message (§2.4.2)."""
        audio = self._out.finish() if tail and self._out is not None else b""
        if audio:
            await self._link.send(self._audio(audio, None).to_json())
        final = (
            FinalOutput.model_validate({})
            if self.context_id is None
            else FinalOutputMulti.model_validate({"context_id": self.context_id})
        )
        await self._link.send(final.to_json())

    def _audio(self, audio: bytes, alignment: Alignment | None) -> _AudioMessage:
        fields = {"alignment": alignment, "normalized_alignment": alignment}
        if self.context_id is None:
            return AudioOutput.from_audio(audio, **fields)
        return AudioOutputMulti.from_audio(audio, context_id=self.context_id, **fields)


def early_timeout(params: dict[str, str]) -> float:
    """The inactivity timeout for the first message, before the query is validated."""
    try:
        value = float(params.get("inactivity_timeout", ""))
    except ValueError:
        return 20.0
    return min(max(value, 1.0), 180.0) if math.isfinite(value) else 20.0


def input_timeout(timeout_s: float) -> SessionError:
    """The real service's inactivity error (§2.6)."""
    error = ErrorMessage.input_timeout(int(timeout_s))
    return SessionError(error.message, error.error, error.code)
