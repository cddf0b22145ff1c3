"""HTTP speech: ``POST /v1/text-to-speech/{voice_id}`` and its ``/stream``, ``/with-timestamps``
and ``/stream/with-timestamps`` variants (docs/protocol.md §4.1-4.2).

A request runs the websocket's path (:mod:`xtts_balancer.jobs`): admitted with the same key
rules, it takes one worker slot from the same FIFO queue for its whole text, which is split into
sentences by the core's splitter and spoken one job per sentence. Everything that can be refused
is checked before the first byte, so those errors get their status code: the body (422 naming
the field; ``text`` is required, every other field has ElevenLabs' default), ``output_format``
(422 listing the valid ones), the voice (404 ``voice_not_found``), the language and the queue.
A failure after streaming began aborts the response, so the client sees a truncated transfer
rather than a short file that looks complete. A client that leaves cancels the job at once, for
a whole-file request too (its ``http.disconnect`` is watched while the audio is made).

From its slot to its end a request is a session like a websocket: counted in the session
metrics (with time-to-first-audio and real-time factor per sentence, and a generation-log line),
and drained on shutdown: it may finish within ``service.graceful_timeout_s``, after which a
whole-file request is answered 503 ``shutting_down`` and a stream is aborted.

Alignment is estimated as on the websocket (:class:`~xtts_balancer.alignment.SegmentAligner`):
each piece of audio carries the characters expected in it, with times in seconds from the start
of this request's audio. Pieces hold back the last ``HOLDBACK_MS`` of each chunk so a
sentence's last piece has audio for its remaining characters. Accepted and ignored:
``model_id`` (logged when it is not ours), ``previous_text``/``next_text`` and request ids
(XTTS takes no context), ``optimize_streaming_latency`` (the first chunk is always small),
``voice_settings`` other than ``speed``, ``pronunciation_dictionary_locators``, ``audio_effects``
and the normalisation switches.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import soundfile
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from xtts_balancer.alignment import SegmentAligner
from xtts_balancer.encoders import content_type, make_encoder
from xtts_balancer.errors import SessionError
from xtts_balancer.http_common import ApiError, admit, parse_model
from xtts_balancer.jobs import acquire_slot, job_events, new_job, record_segment
from xtts_balancer.models_api import note_model_id
from xtts_balancer.pool import Lease
from xtts_balancer.sending import HOLDBACK_MS
from xtts_balancer.state import BalancerState, balancer_state
from xtts_balancer.worker.ipc import Chunk
from xtts_core.protocol import (
    Alignment,
    CloseCode,
    ErrorCode,
    OutputFormat,
    VoiceSettings,
    check_output_format,
)
from xtts_core.text.limits import base_language
from xtts_core.text.split import IncrementalSplitter


__all__ = [
    "AudioWithTimestamps",
    "CharacterAlignment",
    "SpeechQuery",
    "SpeechRequest",
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


class PronunciationDictionaryLocator(BaseModel):
    pronunciation_dictionary_id: str
    version_id: str | None = None


class SpeechRequest(BaseModel):
    """The JSON body of every speech endpoint; only ``text`` is required (§4.1)."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    text: str = Field(min_length=1)
    """What to say."""
    model_id: str = "eleven_multilingual_v2"
    """Accepted whatever it names; this server speaks with the one model it loaded."""
    language_code: str | None = None
    """ISO 639-1 language; none = the server's ``model.language``."""
    voice_settings: VoiceSettings | None = None
    """Only ``speed`` changes the audio."""
    pronunciation_dictionary_locators: list[PronunciationDictionaryLocator] | None = Field(
        None, max_length=3
    )
    """Accepted and ignored."""
    seed: int | None = Field(None, ge=0, le=4294967295)
    """Sampling seed of every sentence (the same seed gives the same audio)."""
    previous_text: str | None = None
    """Accepted and ignored (XTTS takes no context)."""
    next_text: str | None = None
    """Accepted and ignored."""
    previous_request_ids: list[str] | None = Field(None, max_length=3)
    next_request_ids: list[str] | None = Field(None, max_length=3)
    use_pvc_as_ivc: bool = False
    apply_text_normalization: Literal["auto", "on", "off"] = "auto"
    apply_language_text_normalization: bool = False
    audio_effects: dict[str, Any] | None = None


class SpeechQuery(BaseModel):
    """Query parameters of the speech endpoints (§4.1)."""

    output_format: OutputFormat = OutputFormat.MP3_44100_128
    """Audio encoding; ``wav_*`` only for the whole-file endpoint."""
    optimize_streaming_latency: int | None = Field(None, ge=0, le=4)
    """Accepted and ignored (the first chunk is always small)."""
    enable_logging: bool = True


class _StreamingQuery(SpeechQuery):
    @field_validator("output_format", mode="before")
    @classmethod
    def _streamable(cls, value: object) -> OutputFormat:
        return check_output_format(value, streaming=True)


class _FileQuery(SpeechQuery):
    @field_validator("output_format", mode="before")
    @classmethod
    def _known(cls, value: object) -> OutputFormat:
        return check_output_format(value, streaming=False)


class CharacterAlignment(BaseModel):
    """Characters with start and end times in seconds from the start of the request's audio."""

    characters: list[str]
    character_start_times_seconds: list[float]
    character_end_times_seconds: list[float]


class AudioWithTimestamps(BaseModel):
    """``/with-timestamps`` body, and each line of ``/stream/with-timestamps``."""

    audio_base64: str
    alignment: CharacterAlignment | None
    normalized_alignment: CharacterAlignment | None


@dataclass
class _Piece:
    audio: bytes
    alignment: CharacterAlignment | None


@dataclass(eq=False)
class _Speech:
    """One admitted request, holding its slot until :meth:`release`; a
    :class:`~xtts_balancer.jobs.Session` from :meth:`open` to :meth:`release`, so it is counted in
    the session metrics and drained on shutdown like a websocket."""

    state: BalancerState
    voice_id: str
    segments: list[str]
    language: str
    speed: float
    seed: int | None
    output_format: OutputFormat
    lease: Lease
    identity: str | None
    _task: asyncio.Task[Any] | None = field(default=None, init=False)
    _ended_by: SessionError | None = field(default=None, init=False)

    def open(self) -> None:
        self.state.sessions.add(self)
        self.state.metrics.sessions_active.inc()
        self.state.metrics.sessions_total.inc()

    def release(self) -> None:
        self.state.pool.release(self.lease)
        if self.identity is not None:
            self.state.key_sessions[self.identity] -= 1
            self.identity = None
        if self in self.state.sessions:
            self.state.sessions.discard(self)
            self.state.metrics.sessions_active.dec()

    def going_away(self) -> None:
        """The shutdown grace period is over: end with ``shutting_down``."""
        self.end(_shutting_down())

    def end(self, reason: SessionError) -> None:
        """Stop generating now: the running job is cancelled and :meth:`pieces` raises
        ``reason``."""
        self._ended_by = reason
        if self._task is not None:
            self._task.cancel()

    async def pieces(self) -> AsyncIterator[_Piece]:
        """The audio in pieces as it is made (see :meth:`_pieces`).

        Raises:
            SessionError: a job failed, or the reason given to :meth:`end`.
        """
        self._task = asyncio.current_task()
        try:
            if self._ended_by is not None:
                raise self._ended_by
            async with contextlib.aclosing(self._pieces()) as pieces:  # closed (job cancelled)
                async for piece in pieces:  # at once when the consumer stops early
                    yield piece
        except asyncio.CancelledError:
            if self._ended_by is None:
                raise
            if self._task is not None:
                self._task.uncancel()
            raise self._ended_by from None
        finally:
            self._task = None

    async def _pieces(self) -> AsyncGenerator[_Piece, None]:
        """The audio in pieces as it is made, with alignment (see the module docstring)."""
        state = self.state
        assert state.supervisor.sample_rate is not None
        rate = state.supervisor.sample_rate
        encoder = make_encoder(self.output_format.audio_format, rate)
        aligner = SegmentAligner(state.settings.stream.ms_per_char)
        hold = rate * HOLDBACK_MS // 1000
        offset_ms = 0.0
        for index, segment in enumerate(self.segments):
            aligner.start(segment + (" " if index < len(self.segments) - 1 else ""), self.speed)
            job = new_job(
                state, segment, language=self.language, voice_id=self.voice_id, speed=self.speed,
                seed=self.seed,
            )  # fmt: skip
            held = np.zeros(0, np.float32)
            started, first_audio_s, segment_ms = time.monotonic(), None, 0.0
            async with contextlib.aclosing(job_events(state, self.lease, job)) as events:
                async for event in events:
                    if self._ended_by is not None:  # a cancel is lost if a chunk came with it
                        raise self._ended_by
                    if isinstance(event, Chunk):
                        samples = np.concatenate([held, np.frombuffer(event.samples, np.float32)])
                        cut = max(samples.size - hold, 0)
                        samples, held = samples[:cut], samples[cut:]
                    else:
                        samples = held
                    last = not isinstance(event, Chunk)
                    duration_ms = samples.size * 1000.0 / rate
                    audio = encoder.encode(samples) + (encoder.end_segment() if last else b"")
                    alignment = _seconds(aligner.take(duration_ms, last=last), offset_ms)
                    offset_ms += duration_ms
                    segment_ms += duration_ms
                    if audio and first_audio_s is None:
                        first_audio_s = time.monotonic() - started
                        state.metrics.time_to_first_audio.observe(first_audio_s)
                    if audio or alignment is not None:
                        yield _Piece(audio, alignment)
                    if not isinstance(event, Chunk):
                        record_segment(
                            state, event, started=started, first_audio_s=first_audio_s,
                            audio_ms=segment_ms,
                        )  # fmt: skip
        tail = encoder.finish()
        if tail:
            yield _Piece(tail, None)


def _shutting_down() -> SessionError:
    return SessionError(
        "The server is shutting down.", ErrorCode.SHUTTING_DOWN, CloseCode.GOING_AWAY
    )


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
    """Validate, admit and take a slot (every refusal happens here, before any audio)."""
    state = balancer_state(request)
    identity = admit(request)
    try:
        query_model = _StreamingQuery if streaming else _FileQuery
        query = parse_model(query_model, dict(request.query_params), "query")
        speech = parse_model(SpeechRequest, await _read_json(request), "body")
        return await _admitted(request, state, query, speech, identity)
    except BaseException:
        if identity is not None:
            state.key_sessions[identity] -= 1
        raise


async def _admitted(
    request: Request, state: BalancerState, query: SpeechQuery, speech: SpeechRequest,
    identity: str | None,
) -> _Speech:  # fmt: skip
    voice_id = request.path_params["voice_id"]
    note_model_id(speech.model_id)
    limit = state.settings.limits.max_text_chars
    if len(speech.text) > limit:
        raise ApiError(ErrorCode.TEXT_TOO_LONG, f"text is longer than {limit} characters")
    language = base_language(speech.language_code or state.settings.model.language)
    _check_voice(state, voice_id, language)
    try:
        lease = await acquire_slot(state)
    except SessionError as exc:
        raise ApiError.from_session(exc) from None
    try:
        _check_voice(state, voice_id, language)  # the first worker may have just become ready
    except ApiError:
        state.pool.release(lease)
        raise
    splitter = IncrementalSplitter(language)
    segments = splitter.feed(speech.text) + splitter.flush()
    settings = speech.voice_settings
    speed = settings.speed if settings is not None else 1.0
    prepared = _Speech(
        state, voice_id, segments, language, speed, speech.seed, query.output_format, lease,
        identity,
    )  # fmt: skip
    prepared.open()
    return prepared


def _check_voice(state: BalancerState, voice_id: str, language: str) -> None:
    supervisor = state.supervisor
    if supervisor.voices and voice_id not in supervisor.voices:
        raise ApiError(
            ErrorCode.VOICE_NOT_FOUND, f"A voice for the voice_id {voice_id} was not found."
        )
    if supervisor.languages and language not in supervisor.languages:
        raise ApiError.invalid(
            ["body", "language_code"],
            f"language {language!r} is not supported; supported: "
            + ", ".join(sorted(supervisor.languages)),
        )


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
            logger.info("voice %r: the client left; generation cancelled", speech.voice_id)
            speech.end(SessionError("The client left.", "client_left"))
            with contextlib.suppress(asyncio.CancelledError, SessionError):
                await collecting
            return None
        return collecting.result()
    except SessionError as exc:
        raise ApiError.from_session(exc) from None
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
            "voice %r: speech stream failed: %s (%s)", prepared.voice_id, exc.message, exc.error
        )
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
