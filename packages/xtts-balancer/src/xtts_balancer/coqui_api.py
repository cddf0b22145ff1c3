"""coqui's xtts-streaming-server API: ``GET /studio_speakers``, ``POST /clone_speaker``,
``POST /tts_stream``, ``POST /tts`` and ``GET /languages``, in that server's shapes
(:mod:`~xtts_balancer.coqui_models`), for the clients written against it (pipecat's
``XTTSService`` among them).

A dialect over the same session layer as the ElevenLabs HTTP speech
(:mod:`~xtts_balancer.http_speech`): every request but ``/languages`` is a
:class:`~xtts_balancer.session.SpeechSession`, admitted with the same rules (draining,
``limits.max_sessions``, the API key when ``auth`` is on; coqui's server has none, so with
``auth`` off a client needs none), holding one worker slot from the same FIFO queue, counted in
the same metrics and drained the same way. A voice here is its latents: ``/studio_speakers``
gives every voice the workers serve as the latents the worker conditions on, ``/clone_speaker``
clones the uploaded clip on a worker, and ``/tts_stream`` and ``/tts`` speak with exactly the
latents the client sent (checked first: finite numbers of the model's sizes, 422 otherwise),
which travel with each job to the worker. ``/tts_stream`` streams raw 24 kHz 16-bit mono PCM as it
is made, after a WAV header of unknown length when ``add_wav_header`` is set (the default);
``stream_chunk_size`` is the codes per chunk after the first. Refusals come before the first
byte, as 4xx with the error body of the other HTTP endpoints; a backend without latents (the tone
test backend) answers 400.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from typing import TypeVar

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from xtts_balancer.audio import streaming_wav_header
from xtts_balancer.backends.base import DEFAULT_VOICE_ID
from xtts_balancer.coqui_models import (
    CoquiLanguages,
    CoquiSpeakers,
    CoquiSpeechRequest,
    CoquiStreamRequest,
    CoquiWav,
    latents_of,
    speaker_of,
)
from xtts_balancer.encoders import content_type
from xtts_balancer.errors import SessionError
from xtts_balancer.http_common import ApiError, check_caller, parse_model
from xtts_balancer.http_speech import (
    CLIENT_CLOSED_REQUEST,
    LeasedStream,
    Speech,
    admit_request,
    answer_refusals,
    collect,
    read_json,
    whole_file,
)
from xtts_balancer.segments import TextBuffer
from xtts_balancer.session import SpeechSession
from xtts_balancer.state import balancer_state
from xtts_core.protocol import DEFAULT_CHUNK_LENGTH_SCHEDULE, ErrorCode, OutputFormat
from xtts_core.text.limits import base_language

__all__ = ["clone_speaker", "languages", "studio_speakers", "tts", "tts_stream"]

#: The dialect's name in the logs.
KIND = "coqui"
#: Largest JSON body (a voice's latents in JSON are about 0.7 MB).
MAX_BODY_BYTES = 4 << 20
#: Rate of the audio coqui's API answers with.
SAMPLE_RATE = 24000

R = TypeVar("R", bound=CoquiSpeechRequest)


def _latent_dims(session: SpeechSession) -> tuple[int, int]:
    """The workers' latent sizes (a slot is held, so one is warm); 400 without latents."""
    dims = session.state.supervisor.latent_dims
    if dims is None:
        raise ApiError(
            ErrorCode.INVALID_REQUEST,
            "This server's backend (model.backend) has no speaker latents.",
            status_code=400,
        )
    return dims


async def studio_speakers(request: Request) -> Response:
    """``GET /studio_speakers``: every voice, ``default`` (the default voice's alias) too, so a
    client configured with ``default`` works on any server."""
    session = SpeechSession(balancer_state(request), "-", KIND)
    speakers = {}
    with answer_refusals(session, ApiError.from_refusal):
        admit_request(session, request)
        await session.acquire_slot()
        _latent_dims(session)
        for voice_id in sorted(session.state.supervisor.voices):
            try:
                speakers[voice_id] = speaker_of(await session.latents(voice_id))
            except SessionError as exc:  # deleted meanwhile
                if exc.error != ErrorCode.VOICE_NOT_FOUND.value:
                    raise
    session.close()
    return JSONResponse(CoquiSpeakers(speakers).model_dump(mode="json"))


async def clone_speaker(request: Request) -> Response:
    """``POST /clone_speaker``: the latents of the multipart ``wav_file`` (any audio the worker
    reads: WAV, FLAC, OGG, MP3), at most ``limits.max_upload_bytes``."""
    session = SpeechSession(balancer_state(request), "-", KIND)
    with answer_refusals(session, ApiError.from_refusal):
        admit_request(session, request)
        limit = session.settings.limits.max_upload_bytes
        if int(request.headers.get("content-length") or 0) > limit:
            raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"The upload is larger than {limit} bytes.")
        try:
            form = await request.form(max_files=1, max_fields=10)
        except HTTPException as exc:  # Starlette's answer to a MultiPartException
            raise ApiError.invalid(["body"], f"malformed multipart body: {exc.detail}") from None
        upload = form.get("wav_file")
        if not isinstance(upload, UploadFile):
            raise ApiError.invalid(["body", "wav_file"], "wav_file (an audio file) is required")
        clip = await upload.read()
        if len(clip) > limit:
            raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"The upload is larger than {limit} bytes.")
        await session.acquire_slot()
        _latent_dims(session)
        latents = await session.latents(DEFAULT_VOICE_ID, clip)
    session.close()
    return JSONResponse(speaker_of(latents).model_dump(mode="json"))


async def _prepare(request: Request, model: type[R], fmt: OutputFormat) -> tuple[Speech, R]:
    """Admit, validate and take a slot (every refusal happens here, before any audio)."""
    session = SpeechSession(balancer_state(request), "-", KIND)
    with answer_refusals(session, ApiError.from_refusal):
        admit_request(session, request)
        session.record.output_format = fmt.value
        body = parse_model(model, await read_json(request, MAX_BODY_BYTES), "body")
        session.count_text(body.text)
        language = base_language(body.language)
        _check_language(session, language)
        await session.acquire_slot()
        _check_language(session, language)  # the first worker may have just become ready
        latents = latents_of(body, _latent_dims(session))
        digest = hashlib.blake2b(latents.gpt_cond_latent + latents.speaker_embedding)
        session.voice_id = f"latents:{digest.hexdigest()[:12]}"  # the logs' name of the voice
        segments = TextBuffer(language, DEFAULT_CHUNK_LENGTH_SCHEDULE).add(body.text, flush=True)
        chunk_codes = body.stream_chunk_size if isinstance(body, CoquiStreamRequest) else None
        speech = Speech(
            session,
            segments,
            language,
            1.0,
            body.seed,
            fmt.audio_format,
            latents=latents,
            chunk_codes=chunk_codes,
        )
        return speech, body


def _check_language(session: SpeechSession, language: str) -> None:
    """:meth:`SpeechSession.check_language` as a 422 naming ``language``."""
    try:
        session.check_language(language)
    except SessionError as exc:
        raise ApiError.invalid(["body", "language"], exc.message) from None


async def _pcm(speech: Speech, header: bool) -> AsyncIterator[bytes]:
    if header:
        yield streaming_wav_header(SAMPLE_RATE)
    try:
        async for piece in speech.pieces():
            if piece.audio:
                yield piece.audio
    except SessionError as exc:  # headers are out: abort the transfer so the client notices
        speech.session.record_failure(exc)
        raise


async def tts_stream(request: Request) -> Response:
    """``POST /tts_stream``: raw PCM as it is made (see the module docstring)."""
    speech, body = await _prepare(request, CoquiStreamRequest, OutputFormat.PCM_24000)
    media = "audio/wav" if body.add_wav_header else content_type(speech.audio_format)
    return LeasedStream(_pcm(speech, body.add_wav_header), media, speech.release)


async def tts(request: Request) -> Response:
    """``POST /tts``: the whole answer, a base64 WAV in a JSON string."""
    speech, _ = await _prepare(request, CoquiSpeechRequest, OutputFormat.WAV_24000)
    pieces = await collect(request, speech)
    if pieces is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    wav = base64.b64encode(whole_file(speech, pieces)).decode("ascii")
    return JSONResponse(CoquiWav(wav).model_dump(mode="json"))


async def languages(request: Request) -> Response:
    """``GET /languages``: the language codes the workers speak (empty until one is warm)."""
    check_caller(request)
    codes = sorted(balancer_state(request).supervisor.languages)
    return JSONResponse(CoquiLanguages(codes).model_dump(mode="json"))
