"""OpenAI's speech API: ``POST /v1/audio/speech`` and the model listing ``GET /v1/audio/models``.

A dialect over the session layer, as :mod:`xtts_balancer.http_tts` is: the request is admitted
and registered by :func:`~xtts_balancer.http_speech.open_session` (draining,
``limits.max_sessions``, the broker's signature or the key, here usually ``Authorization:
Bearer KEY``), takes one worker slot for its whole input and speaks it one sentence per job into
one encoder (:class:`~xtts_balancer.http_speech.Speech`), counted in the session metrics. The body
always streams as the audio is made (OpenAI's does too): ``stream_format: audio`` sends the bytes
of ``response_format``, ``sse`` sends ``data: {"type": "speech.audio.delta", "audio": <base64>}``
events and a last ``speech.audio.done`` with ``usage`` (characters in, audio codes out).

Everything that can be refused is checked before the first byte, and every refusal is OpenAI's
error body (:func:`xtts_core.protocol.openai_error`, raised as :class:`OpenAIApiError`): a bad
key 401, a bad body 400 naming the field in ``param``, an unknown voice 400 with ``param:
voice``, a full queue 429. Each refusal is the session's recorded answer. A failure
after the first byte aborts the transfer (the client sees a truncated body) and is logged and
counted by :meth:`~xtts_balancer.session.SpeechSession.record_failure`.

``voice`` (a name, or ``{"id": ...}``) resolves, first match wins: ``openai.voices`` (a name
mapped to one of our voices), one of our voice ids, one of our voice names, one of OpenAI's
built-in names (:data:`~xtts_balancer.openai_models.OPENAI_VOICES`: the default voice); anything
else goes on to :meth:`~xtts_balancer.session.SpeechSession.check_voice` (``model.voice_aliases``,
``model.unknown_voice_fallback``, else 400 ``voice_not_found``). The
language is ``model.language``; ``model`` is logged when it is not ours; ``instructions`` is
accepted and ignored.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from xtts_balancer.audio import streaming_wav_header
from xtts_balancer.backends.base import DEFAULT_VOICE_ID
from xtts_balancer.errors import SessionError
from xtts_balancer.http_common import ApiError, check_caller
from xtts_balancer.http_speech import (
    LeasedStream,
    Speech,
    admit_request,
    answer_refusals,
    read_json,
)
from xtts_balancer.models_api import ELEVENLABS_MODEL_IDS, MODEL_ID, note_model_id
from xtts_balancer.openai_models import (
    CONTENT_TYPES,
    OPENAI_VOICES,
    RESPONSE_FORMATS,
    OpenAIModel,
    OpenAIModelList,
    SpeechAudioDelta,
    SpeechAudioDone,
    SpeechCreate,
    SpeechUsage,
    VoiceRef,
)
from xtts_balancer.segments import TextBuffer
from xtts_balancer.session import SpeechSession
from xtts_balancer.state import balancer_state
from xtts_balancer.voices_api import voice_entries
from xtts_core.protocol import (
    DEFAULT_CHUNK_LENGTH_SCHEDULE,
    ErrorCode,
    openai_error,
    openai_status,
)
from xtts_core.text.limits import base_language

__all__ = ["OPENAI_MODEL_IDS", "OpenAIApiError", "audio_models", "audio_speech"]

logger = logging.getLogger(__name__)

#: OpenAI's speech model ids, listed (and accepted) as names of :data:`MODEL_ID`.
OPENAI_MODEL_IDS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
#: Audio of one XTTS code, for ``usage.output_tokens``.
_MS_PER_CODE = 1024 / 22050 * 1000
#: ``created`` of the listed models: when this process started.
_STARTED = int(time.time())


class OpenAIApiError(ApiError):
    """A refusal answered in OpenAI's error shape (rendered by the app's :class:`ApiError`
    handler like any other)."""

    def __init__(
        self, error: ErrorCode | str, message: str, param: str | None = None,
        status: int | None = None,
    ) -> None:  # fmt: skip
        status = status or openai_status(error)
        super().__init__(error, message, status)
        self.body = openai_error(error, message, param, status)

    @classmethod
    def from_refusal(cls, exc: SessionError | ApiError) -> ApiError:
        """``exc`` in OpenAI's shape; a failed validation or a bad language is 400."""
        if isinstance(exc, OpenAIApiError):
            return exc
        if isinstance(exc, SessionError):
            return cls(exc.error, exc.message, status=exc.status)
        keeps_status = exc.error != ErrorCode.INVALID_REQUEST.value
        return cls(exc.error, exc.message, status=exc.status_code if keeps_status else None)


def _parse(data: object) -> SpeechCreate:
    try:
        return SpeechCreate.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = str(first["loc"][0]) if first["loc"] else None  # the body's field at fault
        message = str(first["msg"]).removeprefix("Value error, ")
        raise OpenAIApiError(
            ErrorCode.INVALID_REQUEST, f"{param}: {message}" if param else message, param
        ) from None


def _resolve_voice(request: Request, voice: str | VoiceRef) -> str:
    """Our voice id for ``voice`` (the order of the module docstring)."""
    name = voice.id if isinstance(voice, VoiceRef) else voice
    state = balancer_state(request)
    mapped = state.settings.openai.voices.get(name)
    if mapped is not None:
        return mapped
    served = state.supervisor.voices
    if name in served:
        return name
    for entry in voice_entries(request):
        if entry.name == name:
            return entry.voice_id
    if name.lower() in OPENAI_VOICES:
        return DEFAULT_VOICE_ID
    return name  # resolved further (aliases, the fallback) or refused by check_voice


def _check_voice(session: SpeechSession, language: str) -> None:
    try:
        session.check_voice(language)
    except SessionError as exc:
        param = "voice" if exc.error == ErrorCode.VOICE_NOT_FOUND.value else None
        raise OpenAIApiError(exc.error, exc.message, param, exc.status) from None


async def _prepare(request: Request) -> tuple[Speech, SpeechCreate]:
    """Admit, validate and take a slot (every refusal happens here, before any audio)."""
    session = SpeechSession(balancer_state(request), "", "openai")
    with answer_refusals(session, OpenAIApiError.from_refusal):
        admit_request(session, request)
        prepared = await _admitted(request, session)
        request.state.character_cost = len(prepared[1].input)  # the characters billed
        return prepared


async def _admitted(request: Request, session: SpeechSession) -> tuple[Speech, SpeechCreate]:
    body = _parse(await read_json(request))
    note_model_id(body.model)
    limit = session.settings.limits.max_text_chars
    if len(body.input) > limit:
        raise OpenAIApiError(
            ErrorCode.MAX_CHARACTER_LIMIT_EXCEEDED,
            f"input has {len(body.input)} characters and exceeds the limit of {limit}.",
            "input",
        )
    session.record.output_format = body.response_format
    session.requested_voice_id = session.voice_id = _resolve_voice(request, body.voice)
    language = base_language(session.settings.model.language)
    _check_voice(session, language)
    await session.acquire_slot()
    _check_voice(session, language)  # the first worker may have just become ready
    segments = TextBuffer(language, DEFAULT_CHUNK_LENGTH_SCHEDULE).add(body.input, flush=True)
    fmt = RESPONSE_FORMATS[body.response_format]
    return Speech(session, segments, language, body.speed, None, fmt), body


async def _audio(speech: Speech) -> AsyncIterator[tuple[bytes, float]]:
    """The answer's audio bytes with their nominal durations (a WAV header first for wav)."""
    if speech.audio_format.codec == "wav":
        yield streaming_wav_header(speech.audio_format.sample_rate), 0.0
    try:
        async for piece in speech.pieces():
            if piece.audio:
                yield piece.audio, piece.duration_ms
    except SessionError as exc:  # headers are out: abort the transfer so the client notices
        speech.session.record_failure(exc)
        raise


async def _raw(speech: Speech) -> AsyncIterator[bytes]:
    async for audio, _ in _audio(speech):
        yield audio


async def _events(speech: Speech, body: SpeechCreate) -> AsyncIterator[bytes]:
    """``stream_format: sse``: one delta event per piece of audio, then the done event."""
    audio_ms = 0.0
    async for audio, duration_ms in _audio(speech):
        audio_ms += duration_ms
        delta = SpeechAudioDelta(audio=base64.b64encode(audio).decode("ascii"))
        yield b"data: " + delta.model_dump_json().encode() + b"\n\n"
    codes = round(audio_ms / _MS_PER_CODE)
    usage = SpeechUsage(
        input_tokens=len(body.input), output_tokens=codes, total_tokens=len(body.input) + codes
    )
    yield b"data: " + SpeechAudioDone(usage=usage).model_dump_json().encode() + b"\n\n"


async def audio_speech(request: Request) -> Response:
    """``POST /v1/audio/speech`` (see the module docstring)."""
    speech, body = await _prepare(request)
    if body.stream_format == "sse":
        return LeasedStream(_events(speech, body), "text/event-stream", speech.release)
    media_type = CONTENT_TYPES[body.response_format]
    return LeasedStream(_raw(speech), media_type, speech.release)


async def audio_models(request: Request) -> Response:
    """``GET /v1/audio/models``: the model in OpenAI's list shape, under its own id and OpenAI's
    speech model ids (``GET /v1/models`` answers ElevenLabs' array)."""
    try:
        check_caller(request)
    except ApiError as exc:
        raise OpenAIApiError.from_refusal(exc) from None
    ids = (MODEL_ID, *OPENAI_MODEL_IDS, *ELEVENLABS_MODEL_IDS)
    listing = OpenAIModelList(
        data=[OpenAIModel(id=i, created=_STARTED, owned_by="xtts-stream") for i in ids]
    )
    return JSONResponse(listing.model_dump(mode="json"))
