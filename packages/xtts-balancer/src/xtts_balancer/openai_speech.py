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
error body (:func:`xtts_core.protocol.openai_error_body`): a bad key 401, a bad body 400 naming
the field in ``param``, an unknown voice 400 with ``param: voice``, a full queue 429. A failure
after the first byte aborts the transfer (the client sees a truncated body) and is logged and
counted by :meth:`~xtts_balancer.session.SpeechSession.record_failure`.

``voice`` (a name, or ``{"id": ...}``) resolves, first match wins: ``openai.voices`` (a name
mapped to one of our voices), one of our voice ids, one of our voice names, one of OpenAI's
built-in names (:data:`~xtts_balancer.openai_models.OPENAI_VOICES`: the default voice). The
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
    closed_on_failure,
    open_session,
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
    openai_error_body,
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


class OpenAIApiError(Exception):
    """A refusal answered in OpenAI's error shape."""

    def __init__(
        self, error: ErrorCode | str, message: str, param: str | None = None,
        status: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.error, self.message, self.param = error, message, param
        self.status = status or openai_status(error)

    @classmethod
    def from_session(cls, exc: SessionError, param: str | None = None) -> OpenAIApiError:
        return cls(exc.error, exc.message, param, exc.status)

    @classmethod
    def from_api(cls, exc: ApiError) -> OpenAIApiError:
        status = None if exc.code == ErrorCode.INVALID_REQUEST.value else exc.status_code
        return cls(exc.code, exc.message, status=status)

    def response(self) -> Response:
        body = openai_error_body(self.error, self.message, self.param, self.status)
        return JSONResponse(body, status_code=self.status)


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
    if not served:  # no worker is ready yet: checked again once the slot is held
        return name
    raise OpenAIApiError(
        ErrorCode.VOICE_NOT_FOUND,
        f"Voice {name!r} was not found: use one of GET /v1/voices or an OpenAI voice name.",
        "voice",
    )


def _check_voice(session: SpeechSession, language: str) -> None:
    try:
        session.check_voice(language)
    except SessionError as exc:
        param = "voice" if exc.error == ErrorCode.VOICE_NOT_FOUND.value else None
        raise OpenAIApiError.from_session(exc, param) from None


async def _prepare(request: Request) -> tuple[Speech, SpeechCreate]:
    """Admit, validate and take a slot (every refusal happens here, before any audio)."""
    try:
        session = open_session(request, "", "openai")
    except SessionError as exc:
        raise OpenAIApiError.from_session(exc) from None
    try:
        with closed_on_failure(session):
            return await _admitted(request, session)
    except ApiError as exc:
        refusal = OpenAIApiError.from_api(exc)
    except SessionError as exc:
        refusal = OpenAIApiError.from_session(exc)
    except OpenAIApiError as exc:
        refusal = exc
    logger.info("%s: refused: %s (%s)", session.tag, refusal.message, refusal.error)
    raise refusal


async def _admitted(request: Request, session: SpeechSession) -> tuple[Speech, SpeechCreate]:
    body = _parse(await read_json(request))
    note_model_id(body.model)
    limit = session.settings.limits.max_text_chars
    if len(body.input) > limit:
        raise OpenAIApiError(
            ErrorCode.TEXT_TOO_LONG, f"input is longer than {limit} characters", "input"
        )
    session.voice_id = _resolve_voice(request, body.voice)
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
    try:
        speech, body = await _prepare(request)
    except OpenAIApiError as exc:
        return exc.response()
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
        return OpenAIApiError.from_api(exc).response()
    ids = (MODEL_ID, *OPENAI_MODEL_IDS, *ELEVENLABS_MODEL_IDS)
    listing = OpenAIModelList(
        data=[OpenAIModel(id=i, created=_STARTED, owned_by="xtts-stream") for i in ids]
    )
    return JSONResponse(listing.model_dump(mode="json"))
