"""The ``/v1/text-to-speech/{voice_id}/multi-stream-input`` websocket (docs/protocol.md §3).

One socket carries up to ``limits.max_contexts_per_socket`` (ElevenLabs: 5) contexts, each an
independent stream with its own text buffer, voice settings, chunk schedule, encoder, alignment
and inactivity clock. Set-up, authentication, the worker slot, voice checks and error handling
are shared with stream-input (:class:`~xtts_balancer.ws_socket.SocketLink`,
:class:`~xtts_balancer.session.SpeechSession`); what is this dialect's own is the message set and
the scheduling of speech.

Rules, in the order the spec gives them (§3.1–3.3):

- The first message seen for a ``context_id`` creates that context, whatever its kind; a message
  without one addresses the default context ``"default"``; one context more than the limit is the
  ``max_active_conversations`` error and a close with 1008. A context that is still closing
  counts until its final message is sent; an id may be reused after that. Settings
  (``voice_settings.speed``, ``generation_config``) are taken from the context's first message;
  later ones are ignored, so pipecat's keep-alive before its opening message does no harm.
- Text is buffered per context as on stream-input (:class:`~xtts_balancer.segments.TextBuffer`:
  sentence ends, the chunk schedule, ``auto_mode``); ``flush`` speaks the rest of the buffer;
  ``{"text": "", "context_id": …}`` only resets the context's clock, and ``{"text": ""}`` without
  an id is a connection keep-alive.
- ``close_context`` finishes the text that a ``flush`` already covered (livekit flushes, then
  closes, then waits for the audio) and stops everything else *at once*: unflushed buffered text
  is dropped and, if the context's running segment was not flushed, its job is cancelled at the
  worker, so the slot is free for the other contexts within one chunk (barge-in: pipecat closes
  the context mid-stream when the user interrupts). Then comes the context's final message
  ``{"isFinal": true, "contextId": …}``; a second ``close_context`` is ignored; text for a
  closing context is answered with a ``context_closing`` error naming it, and the socket and
  the other contexts carry on.
- A context idle for ``inactivity_timeout`` seconds is closed the same way (its final message);
  a socket with no context left that hears nothing for that long gets ``input_timeout_exceeded``
  and 1008, as stream-input does.
- ``close_socket`` closes every context as above, then the socket with 1000.

Slot policy: a socket holds one worker slot while any of its contexts has something to say, and
gives it back as soon as none has (idle conversations hold no capacity), as stream-input does;
its contexts share the slot **round-robin by segment** (a sentence, or what the schedule
releases): the scheduler runs one segment at a time, taking the next from the context after the
one it served last. A context's audio is therefore always sent in order and never interleaved
with another context's within a segment; a long answer in one context delays a new one by at
most one segment.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field

from starlette.websockets import WebSocket

from xtts_balancer.errors import SessionError
from xtts_balancer.segments import TextBuffer
from xtts_balancer.ws_socket import SocketLink, SocketStream, input_timeout
from xtts_core.errors import ProtocolError
from xtts_core.protocol import (
    BOS_TEXT,
    DEFAULT_CHUNK_LENGTH_SCHEDULE,
    CloseCode,
    CloseContext,
    CloseSocket,
    ErrorCode,
    ErrorMessage,
    FlushContext,
    InitialiseContext,
    KeepContextAlive,
    MultiStreamInputMessage,
    SendTextMulti,
    bearer,
    parse_client_message,
)
from xtts_core.text.limits import base_language

__all__ = ["DEFAULT_CONTEXT_ID", "MultiStreamInput", "multi_stream_input"]

logger = logging.getLogger(__name__)

#: The context a message without ``context_id`` addresses (the id ElevenLabs echoes for it is
#: undocumented, docs/protocol.md §3.1).
DEFAULT_CONTEXT_ID = "default"


async def multi_stream_input(websocket: WebSocket) -> None:
    """The Starlette websocket endpoint."""
    dialect = MultiStreamInput(websocket)
    await dialect.link.run(dialect.serve)


@dataclass(eq=False)
class _Context:
    """One context's state. Segments carry their sequence number within the context; those
    below ``flushed`` were covered by a flush and survive ``close_context``."""

    context_id: str
    buffer: TextBuffer
    stream: SocketStream
    last_activity: float
    segments: collections.deque[tuple[int, str]] = field(default_factory=collections.deque)
    enqueued: int = 0
    flushed: int = 0
    busy: bool = False  # a burst of speech is in progress (queued or running segments)
    closing: bool = False
    cut: bool = False  # a running segment was cancelled: the encoder's tail is not sent

    def queue(self, segments: list[str], *, flush: bool) -> None:
        for segment in segments:
            self.segments.append((self.enqueued, segment))
            self.enqueued += 1
        if flush:
            self.flushed = self.enqueued

    @property
    def ready(self) -> bool:
        """The scheduler has work for it: a segment, or the final message of a close."""
        return bool(self.segments) or self.closing


@dataclass(eq=False)
class _Running:
    context: _Context
    seq: int
    task: asyncio.Task[None]


class MultiStreamInput:
    """One multi-stream-input socket; see the module docstring."""

    def __init__(self, websocket: WebSocket) -> None:
        self.link = SocketLink(websocket, "multi-stream-input")
        self._contexts: dict[str, _Context] = {}  # in round-robin order: served ones move last
        self._wake = asyncio.Event()
        self._running: _Running | None = None
        self._closing_socket = False

    # --- set-up ----------------------------------------------------------------------------------

    async def serve(self) -> None:
        link, session = self.link, self.link.session
        first = _parse(await link.receive_first())
        if session.needs_key:
            key = None
            if isinstance(first, InitialiseContext):
                key = first.xi_api_key or first.authorization
            session.authenticate(bearer(key))
        query = link.take_query()
        self.language = base_language(
            query.language_code or query.language or link.settings.model.language
        )
        await link.prepare(self.language)
        link.start_generator(self._generate())
        await self._apply(first)
        await link.receive_loop(self._handle_text, self._expire_idle)

    def _new_context(self, context_id: str, message: MultiStreamInputMessage) -> _Context:
        link = self.link
        limit = link.settings.limits.max_contexts_per_socket
        if len(self._contexts) >= limit:
            error = ErrorMessage.max_active_conversations(limit)
            raise SessionError(error.message, error.error, error.code)
        voice_settings = generation_config = None
        if isinstance(message, InitialiseContext):
            voice_settings, generation_config = message.voice_settings, message.generation_config
        if voice_settings is not None and "speed" in voice_settings.model_fields_set:
            speed = voice_settings.speed
        else:
            speed = link.query.speed or 1.0
        schedule = (
            generation_config.chunk_length_schedule
            if generation_config is not None
            else list(DEFAULT_CHUNK_LENGTH_SCHEDULE)
        )
        context = _Context(
            context_id=context_id,
            buffer=TextBuffer(self.language, schedule, auto_mode=link.query.auto_mode),
            stream=SocketStream(link, speed, context_id),
            last_activity=time.monotonic(),
        )
        self._contexts[context_id] = context
        return context

    # --- receiving -------------------------------------------------------------------------------

    async def _handle_text(self, text: str) -> None:
        """Parse and apply one multi-context message; after close_socket, messages are ignored."""
        if not self._closing_socket:
            await self._apply(_parse(text))

    def _expire_idle(self) -> None:
        link, now = self.link, time.monotonic()
        if self._closing_socket:
            return
        if not self._contexts and now - link.last_activity > link.timeout_s:
            raise input_timeout(link.timeout_s)
        for context in list(self._contexts.values()):
            idle = not context.closing and not context.busy
            if idle and now - context.last_activity > link.timeout_s:
                logger.info(
                    "%s: context %r idle for %g s: closed", link.session.tag, context.context_id,
                    link.timeout_s,
                )  # fmt: skip
                self._close_context(context)

    async def _apply(self, message: MultiStreamInputMessage) -> None:
        if isinstance(message, CloseSocket):
            self._closing_socket = True
            for context in list(self._contexts.values()):
                self._close_context(context)
            self._wake.set()
            return
        if isinstance(message, KeepContextAlive) and message.context_id is None:
            return  # pipecat's connection keep-alive
        context_id = message.context_id or DEFAULT_CONTEXT_ID
        context = self._contexts.get(context_id) or self._new_context(context_id, message)
        context.last_activity = time.monotonic()
        if isinstance(message, CloseContext):
            self._close_context(context)
        elif context.closing:
            if not isinstance(message, KeepContextAlive):
                await self._context_error(context_id)
        elif isinstance(message, InitialiseContext | SendTextMulti | FlushContext):
            self._add_text(context, message)

    def _add_text(
        self, context: _Context, message: InitialiseContext | SendTextMulti | FlushContext
    ) -> None:
        text = message.text or ""
        flush = not isinstance(message, SendTextMulti) and message.flush
        try_trigger = isinstance(message, SendTextMulti) and message.try_trigger_generation
        if text == BOS_TEXT and not flush:
            return  # only opens the context
        self.link.session.count_text(text)
        segments = context.buffer.add(text, flush=flush, try_trigger=try_trigger)
        context.queue(segments, flush=flush)
        if segments:
            if not context.busy:  # a burst of speech starts: so does its real-time clock
                context.stream.pacer.reset()
                context.busy = True
            self._wake.set()

    def _close_context(self, context: _Context) -> None:
        """Keep the flushed segments, drop the rest and cancel an unflushed running segment."""
        if context.closing:
            return
        context.closing = True
        while context.segments and context.segments[-1][0] >= context.flushed:
            context.segments.pop()
        running = self._running
        if running is not None and running.context is context and running.seq >= context.flushed:
            context.cut = True
            running.task.cancel()  # its job is cancelled at the worker (job_events' cleanup)
        self._wake.set()

    async def _context_error(self, context_id: str) -> None:
        """A message for a context that is closing: an error for that context only."""
        error = SessionError(
            f"Context {context_id!r} is closing; wait for its final message before reusing the id.",
            ErrorCode.CONTEXT_CLOSING,
        )
        self.link.session.record_failure(error)
        reply = json.loads(error.to_message().to_json())
        reply.update(contextId=context_id, context_id=context_id)
        await self.link.send(json.dumps(reply))

    # --- generating ------------------------------------------------------------------------------

    async def _generate(self) -> None:
        """Serve the contexts round-robin, one segment at a time (see the module docstring)."""
        while True:
            context = next((c for c in self._contexts.values() if c.ready), None)
            if not any(c.segments for c in self._contexts.values()):
                self.link.release_idle_slot()  # nothing to say: idle contexts hold no slot
            if context is None:
                if self._closing_socket:
                    await self.link.close(CloseCode.NORMAL)
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            del self._contexts[context.context_id]  # served: to the end of the rotation
            if context.segments:
                self._contexts[context.context_id] = context
                await self._run_segment(context, *context.segments.popleft())
            else:
                await self._finish(context)

    async def _run_segment(self, context: _Context, seq: int, text: str) -> None:
        task = asyncio.create_task(context.stream.speak(text, self.language))
        self._running = _Running(context, seq, task)
        try:
            await asyncio.wait({task})
        finally:
            self._running = None
            if not task.done():  # the session itself is being stopped
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if not task.cancelled():
            task.result()  # a worker failure or a lost client ends the session
        context.busy = bool(context.segments)
        if not context.busy:
            context.last_activity = time.monotonic()  # silence counts from the end of the audio

    async def _finish(self, context: _Context) -> None:
        """A closed context's last frames (unless it was cut short) and its final message."""
        await context.stream.finish(tail=not context.cut)
        # A socket left without contexts: its own inactivity clock starts now.
        self.link.last_activity = time.monotonic()


def _parse(text: str) -> MultiStreamInputMessage:
    try:
        return parse_client_message(text, multi_context=True)
    except ProtocolError as exc:
        raise SessionError.from_protocol(exc) from None
