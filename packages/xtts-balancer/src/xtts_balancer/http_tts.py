"""HTTP speech: ``POST /v1/text-to-speech/{voice_id}`` and its ``/stream``, ``/with-timestamps``
and ``/stream/with-timestamps`` variants (docs/protocol.md §4.1-4.2).

A thin dialect over :class:`~xtts_balancer.session.SpeechSession`, the websockets' session layer:
admitted with the same rules (draining, ``limits.max_sessions``, the key and its limit), it takes
one worker slot from the same FIFO queue for its whole text, which is split into sentences by the
same :class:`~xtts_balancer.segments.TextBuffer` and spoken one job per sentence, its audio cut
into pieces with alignment by the same :class:`~xtts_balancer.sending.AudioOut`. Everything that can be refused
is checked before the first byte, so those errors get their status code: the body (422 naming
the field; ``text`` is required, every other field has ElevenLabs' default), ``output_format``
(422 listing the valid ones), the voice (404 ``voice_not_found``), the language and the queue.
A failure after streaming began aborts the response, so the client sees a truncated transfer
rather than a short file that looks complete. A client that leaves cancels the job at once, for
a whole-file request too (its ``http.disconnect`` is watched while the audio is made).

From its admission to its end a request is a session like a websocket: counted in the session
metrics (with time-to-first-audio and real-time factor per sentence, and a generation-log line),
and drained on shutdown: it may finish within ``service.graceful_timeout_s``, after which a
whole-file request is answered 503 ``shutting_down`` and a stream is aborted.

Alignment is estimated as on the websocket (:class:`~xtts_balancer.alignment.SegmentAligner`):
each piece of audio carries the characters expected in it, with times in seconds from the start
of this request's audio. Accepted and ignored:
``model_id`` (logged when it is not ours), ``previous_text``/``next_text`` and request ids
(XTTS takes no context), ``optimize_streaming_latency`` (the first chunk is always small),
``voice_settings`` other than ``speed``, ``pronunciation_dictionary_locators``, ``audio_effects``
and ``apply_language_text_normalization``. ``apply_text_normalization: off`` is honoured (numbers,
abbreviations and symbols are read as written), and so is ``<break time="…"/>`` in the text.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np
import soundfile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from xtts_balancer.alignment import SegmentAligner
from xtts_balancer.encoders import content_type, make_encoder
from xtts_balancer.errors import SessionError
from xtts_balancer.http_common import ApiError, parse_model
from xtts_balancer.http_models import (
    AudioWithTimestamps,
    CharacterAlignment,
    FileQuery,
    SpeechRequest,
    StreamingQuery,
)
from xtts_balancer.models_api import note_model_id
from xtts_balancer.segments import TextBuffer
from xtts_balancer.sending import AudioOut
from xtts_balancer.session import SpeechSession, shutting_down
from xtts_balancer.state import balancer_state
from xtts_core.protocol import (
    DEFAULT_CHUNK_LENGTH_SCHEDULE,
    Alignment,
    ErrorCode,
    OutputFormat,
    request_api_key,
)
from xtts_core.text.limits import base_language

__all__ = [
    "speech",
    "speech_stream",
    "speech_stream_with_timestamps",
    "speech_with_timestamps",
]

logger = logging.getLogger(__name__)

#: Largest JSON body accepted (text is limited separately by ``limits.max_text_chars``).
MAX_BODY_BYTES = 1 << 20
#: Status of a whole-file answer whose client left (nginx's "client closed request"; unread).
CLIENT_CLOSED_REQUEST = 499


@dataclass
class _Piece:
    audio: bytes
    alignment: CharacterAlignment | None


@dataclass(eq=False)
class _Speech:
    """One admitted request and its :class:`SpeechSession`, which holds the slot until
    :meth:`release`; ended early by :meth:`end` or by the drain."""

    session: SpeechSession
    segments: list[str]
    language: str
    speed: float
    seed: int | None
    output_format: OutputFormat
    _ended_by: SessionError | None = field(default=None, init=False)

    def release(self) -> None:
        self.session.close()

    def end(self, reason: SessionError) -> None:
        """Stop generating now: the running job is cancelled and :meth:`pieces` raises
        ``reason``."""
        self._ended_by = reason
        if self.session.task is not None:
            self.session.task.cancel()

    def _reason(self) -> SessionError | None:
        return self._ended_by or (shutting_down() if self.session.gone_away else None)

    async def pieces(self) -> AsyncIterator[_Piece]:
        """The audio in pieces as it is made (see :meth:`_pieces`).

        Raises:
            SessionError: a job failed, or the request was ended (:meth:`end`, the drain).
        """
        session = self.session
        session.task = asyncio.current_task()
        try:
            if (reason := self._reason()) is not None:
                raise reason
            async with contextlib.aclosing(self._pieces()) as pieces:  # closed (job cancelled)
                async for piece in pieces:  # at once when the consumer stops early
                    yield piece
        except asyncio.CancelledError:
            reason = self._reason()
            if reason is None:
                raise
            if session.task is not None:
                session.task.uncancel()
            raise reason from None
        finally:
            session.task = None

    async def _pieces(self) -> AsyncGenerator[_Piece, None]:
        """The audio in pieces as it is made, with alignment (see the module docstring)."""
        session = self.session
        state = session.state
        assert state.supervisor.sample_rate is not None
        encoder = make_encoder(self.output_format.audio_format, state.supervisor.sample_rate)
        aligner = SegmentAligner(state.settings.stream.ms_per_char)
        out = AudioOut(encoder, aligner, state.metrics.time_to_first_audio)
        offset_ms = 0.0
        for index, segment in enumerate(self.segments):
            separator = " " if index < len(self.segments) - 1 else ""
            spoken = session.speak(
                segment, out, language=self.language, speed=self.speed, seed=self.seed,
                separator=separator,
            )  # fmt: skip
            async for piece in spoken:
                if (reason := self._reason()) is not None:  # a cancel is lost if a chunk came
                    raise reason
                yield _Piece(piece.audio, _seconds(piece.alignment, offset_ms))
                offset_ms += piece.duration_ms
        tail = out.finish()
        if tail:
            yield _Piece(tail, None)


def _seconds(alignment: Alignment | None, offset_ms: float) -> CharacterAlignment | None:
    """A websocket :class:`~xtts_core.protocol.Alignment` (ms, relative) in HTTP form."""
    if alignment is None:
        return None
    starts = [(offset_ms + s) / 1000 for s in alignment.char_start_times_ms]
    return CharacterAlignment(
        characters=list(alignment.chars),
        character_start_times_seconds=[round(s, 3) for s in starts],
        character_end_times_seconds=[
            round(s + d / 1000, 3) for s, d in zip(starts, alignment.char_durations_ms, strict=True)
        ],
    )


async def _prepare(request: Request, *, streaming: bool) -> _Speech:
    """Admit, validate and take a slot (every refusal happens here, before any audio)."""
    session = SpeechSession(balancer_state(request), request.path_params["voice_id"], "http")
    try:
        session.admit(
            request.method, request.url.path, request.headers,
            request_api_key(request.headers, request.query_params),
        )  # fmt: skip
        if session.needs_key:
            session.authenticate(None)
        session.session_id = session.session_id or request.state.request_id
        logger.info("%s: %s %s", session.tag, request.method, request.url.path)
        session.open()
        query_model = StreamingQuery if streaming else FileQuery
        query = parse_model(query_model, dict(request.query_params), "query")
        body = parse_model(SpeechRequest, await _read_json(request), "body")
        speech = await _admitted(session, query.output_format, body)
        request.state.character_cost = len(body.text)  # the characters billed, as ElevenLabs does
        return speech
    except (SessionError, ApiError) as exc:
        error = ApiError.from_session(exc) if isinstance(exc, SessionError) else exc
        session.record.answered(error.status_code, error.error)
        session.close()
        raise error from None
    except BaseException:
        session.close()
        raise


async def _admitted(
    session: SpeechSession, output_format: OutputFormat, body: SpeechRequest
) -> _Speech:
    settings = session.settings
    session.record.output_format = output_format.value
    note_model_id(body.model_id)
    limit = settings.limits.max_text_chars
    if len(body.text) > limit:
        raise ApiError(
            ErrorCode.MAX_CHARACTER_LIMIT_EXCEEDED,
            f"This request's text has {len(body.text)} characters and exceeds the character "
            f"limit of {limit} characters.",
        )
    language = base_language(body.language_code or settings.model.language)
    session.normalize_text = body.apply_text_normalization != "off"
    _check_voice(session, language)
    await session.acquire_slot()
    _check_voice(session, language)  # the first worker may have just become ready
    buffer = TextBuffer(language, DEFAULT_CHUNK_LENGTH_SCHEDULE)
    speed = body.voice_settings.speed if body.voice_settings is not None else 1.0
    return _Speech(
        session, buffer.add(body.text, flush=True), language, speed, body.seed, output_format
    )


def _check_voice(session: SpeechSession, language: str) -> None:
    """:meth:`SpeechSession.check_voice` in ElevenLabs' HTTP words: a bad language is a 422
    naming ``language_code``."""
    try:
        session.check_voice(language)
    except SessionError as exc:
        if exc.error == ErrorCode.INVALID_MESSAGE.value:
            raise ApiError.invalid(["body", "language_code"], exc.message) from None
        if exc.error == ErrorCode.VOICE_NOT_FOUND.value:
            message = f"A voice for the voice_id {session.requested_voice_id} was not found."
            raise ApiError(ErrorCode.VOICE_NOT_FOUND, message) from None
        raise


async def _read_json(request: Request) -> object:
    size = int(request.headers.get("content-length") or 0)
    if size > MAX_BODY_BYTES:
        raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"body larger than {MAX_BODY_BYTES} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
        raise ApiError.invalid(["body"], f"body is not valid JSON: {exc}") from None


class _LeasedStream(StreamingResponse):
    """A streaming response that runs ``release`` however it ends (even if never iterated)."""

    def __init__(
        self, content: AsyncIterator[bytes], media_type: str, release: Callable[[], None]
    ) -> None:
        super().__init__(content, media_type=media_type)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()

    async def stream_response(self, send: Send) -> None:
        """Starlette's, except that a failed synthesis (already logged) ends the transfer
        without its last chunk: the server then closes the connection and the client sees a
        broken body, never a short one that looks complete, and no traceback is logged for an
        expected failure."""
        with contextlib.suppress(SessionError):
            await super().stream_response(send)


async def _collect(request: Request, speech: _Speech) -> list[_Piece] | None:
    """Every piece of a whole-file request; ``None`` if the client left first, which cancels
    the running job at once (nobody reads a response until it is complete, so the request's
    ``http.disconnect`` is watched while the audio is made)."""
    collecting = asyncio.ensure_future(_all_pieces(speech))
    client_gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({collecting, client_gone}, return_when=asyncio.FIRST_COMPLETED)
        if not collecting.done():
            logger.info("%s: the client left; generation cancelled", speech.session.tag)
            speech.end(SessionError("The client left.", ErrorCode.CLIENT_LEFT))
            speech.session.record.answered(CLIENT_CLOSED_REQUEST, ErrorCode.CLIENT_LEFT.value)
            with contextlib.suppress(asyncio.CancelledError, SessionError):
                await collecting
            return None
        return collecting.result()
    except SessionError as exc:
        error = ApiError.from_session(exc)
        speech.session.record.answered(error.status_code, error.error)
        raise error from None
    finally:
        client_gone.cancel()
        collecting.cancel()
        speech.release()


async def _all_pieces(speech: _Speech) -> list[_Piece]:
    return [piece async for piece in speech.pieces()]


async def _disconnected(request: Request) -> None:
    """Returns when the client has closed the connection (the body is already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _whole_file(speech: _Speech, pieces: list[_Piece]) -> bytes:
    audio = b"".join(piece.audio for piece in pieces)
    fmt = speech.output_format.audio_format
    if fmt.codec != "wav":
        return audio
    out = io.BytesIO()
    soundfile.write(
        out, np.frombuffer(audio, "<i2"), fmt.sample_rate, format="WAV", subtype="PCM_16"
    )
    return out.getvalue()


def _joined_alignment(pieces: list[_Piece]) -> CharacterAlignment | None:
    alignments = [piece.alignment for piece in pieces if piece.alignment is not None]
    if not alignments:
        return None
    return CharacterAlignment(
        characters=[c for a in alignments for c in a.characters],
        character_start_times_seconds=[
            t for a in alignments for t in a.character_start_times_seconds
        ],
        character_end_times_seconds=[t for a in alignments for t in a.character_end_times_seconds],
    )


async def speech(request: Request) -> Response:
    """``POST /v1/text-to-speech/{voice_id}``: the whole file."""
    prepared = await _prepare(request, streaming=False)
    pieces = await _collect(request, prepared)
    if pieces is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    fmt = prepared.output_format.audio_format
    return Response(_whole_file(prepared, pieces), media_type=content_type(fmt))


async def speech_with_timestamps(request: Request) -> Response:
    """``POST /v1/text-to-speech/{voice_id}/with-timestamps``: the whole file in JSON."""
    prepared = await _prepare(request, streaming=False)
    pieces = await _collect(request, prepared)
    if pieces is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    alignment = _joined_alignment(pieces)
    body = AudioWithTimestamps(
        audio_base64=base64.b64encode(_whole_file(prepared, pieces)).decode("ascii"),
        alignment=alignment, normalized_alignment=alignment,
    )  # fmt: skip
    return JSONResponse(body.model_dump(mode="json"))


async def _stream_bytes(prepared: _Speech, lines: bool) -> AsyncIterator[bytes]:
    try:
        async for piece in prepared.pieces():
            if not lines:
                if piece.audio:
                    yield piece.audio
                continue
            line = AudioWithTimestamps(
                audio_base64=base64.b64encode(piece.audio).decode("ascii"),
                alignment=piece.alignment, normalized_alignment=piece.alignment,
            )  # fmt: skip
            yield line.model_dump_json().encode() + b"\n"
    except SessionError as exc:  # headers are out: abort the transfer so the client notices
        logger.warning(
            "%s: speech stream failed: %s (%s)", prepared.session.tag, exc.message, exc.error
        )
        prepared.session.record.answered(200, exc.error)
        raise


async def speech_stream(request: Request) -> Response:
    """``POST /v1/text-to-speech/{voice_id}/stream``: audio as it is made."""
    prepared = await _prepare(request, streaming=True)
    media_type = content_type(prepared.output_format.audio_format)
    return _LeasedStream(_stream_bytes(prepared, lines=False), media_type, prepared.release)


async def speech_stream_with_timestamps(request: Request) -> Response:
    """``POST /v1/text-to-speech/{voice_id}/stream/with-timestamps``: one JSON object per line."""
    prepared = await _prepare(request, streaming=True)
    return _LeasedStream(
        _stream_bytes(prepared, lines=True), "application/x-ndjson", prepared.release
    )
