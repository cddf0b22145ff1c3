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

import base64
import logging
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from xtts_balancer.encoders import content_type
from xtts_balancer.errors import SessionError
from xtts_balancer.http_common import ApiError, parse_model
from xtts_balancer.http_models import (
    AudioWithTimestamps,
    CharacterAlignment,
    FileQuery,
    SpeechRequest,
    StreamingQuery,
)
from xtts_balancer.http_speech import (
    CLIENT_CLOSED_REQUEST,
    LeasedStream,
    Speech,
    SpeechPiece,
    admit_request,
    answer_refusals,
    collect,
    read_json,
    whole_file,
)
from xtts_balancer.models_api import note_model_id
from xtts_balancer.segments import TextBuffer
from xtts_balancer.session import SpeechSession
from xtts_balancer.state import balancer_state
from xtts_core.protocol import (
    DEFAULT_CHUNK_LENGTH_SCHEDULE,
    ErrorCode,
    OutputFormat,
)
from xtts_core.text.limits import base_language

__all__ = [
    "speech",
    "speech_stream",
    "speech_stream_with_timestamps",
    "speech_with_timestamps",
]

logger = logging.getLogger(__name__)


async def _prepare(request: Request, *, streaming: bool) -> Speech:
    """Admit, validate and take a slot (every refusal happens here, before any audio)."""
    session = SpeechSession(balancer_state(request), request.path_params["voice_id"], "http")
    with answer_refusals(session, ApiError.from_refusal):
        admit_request(session, request)
        query_model = StreamingQuery if streaming else FileQuery
        query = parse_model(query_model, dict(request.query_params), "query")
        body = parse_model(SpeechRequest, await read_json(request), "body")
        speech = await _admitted(session, query.output_format, body)
        request.state.character_cost = len(body.text)  # the characters billed, as ElevenLabs does
        return speech


async def _admitted(
    session: SpeechSession, output_format: OutputFormat, body: SpeechRequest
) -> Speech:
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
    segments = buffer.add(body.text, flush=True)
    return Speech(session, segments, language, speed, body.seed, output_format.audio_format)


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


def _joined_alignment(pieces: list[SpeechPiece]) -> CharacterAlignment | None:
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
    pieces = await collect(request, prepared)
    if pieces is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    fmt = prepared.audio_format
    return Response(whole_file(prepared, pieces), media_type=content_type(fmt))


async def speech_with_timestamps(request: Request) -> Response:
    """``POST /v1/text-to-speech/{voice_id}/with-timestamps``: the whole file in JSON."""
    prepared = await _prepare(request, streaming=False)
    pieces = await collect(request, prepared)
    if pieces is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    alignment = _joined_alignment(pieces)
    body = AudioWithTimestamps(
        audio_base64=base64.b64encode(whole_file(prepared, pieces)).decode("ascii"),
        alignment=alignment, normalized_alignment=alignment,
    )  # fmt: skip
    return JSONResponse(body.model_dump(mode="json"))


async def _stream_bytes(prepared: Speech, lines: bool) -> AsyncIterator[bytes]:
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
    media_type = content_type(prepared.audio_format)
    return LeasedStream(_stream_bytes(prepared, lines=False), media_type, prepared.release)


async def speech_stream_with_timestamps(request: Request) -> Response:
    """``POST /v1/text-to-speech/{voice_id}/stream/with-timestamps``: one JSON object per line."""
    prepared = await _prepare(request, streaming=True)
    return LeasedStream(
        _stream_bytes(prepared, lines=True), "application/x-ndjson", prepared.release
    )
