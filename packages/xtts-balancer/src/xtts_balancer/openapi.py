"""The HTTP API's route table and its OpenAPI 3.1 description at ``GET /openapi.json``.

One table (:data:`ENDPOINTS`) gives both the Starlette routes and the description, and the
schemas come from the pydantic models the handlers validate and answer with, so the description
cannot drift from what is served. The websocket is described in ``docs/protocol.md``, not here
(OpenAPI has no websocket messages).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from xtts_balancer.__about__ import __version__
from xtts_balancer.account_api import (
    SubscriptionResponse,
    UserResponse,
    get_subscription,
    get_user,
)
from xtts_balancer.coqui_api import clone_speaker, languages, studio_speakers, tts, tts_stream
from xtts_balancer.coqui_models import (
    CoquiLanguages,
    CoquiSpeaker,
    CoquiSpeakers,
    CoquiSpeechRequest,
    CoquiStreamRequest,
    CoquiWav,
)
from xtts_balancer.http_models import AudioWithTimestamps, SpeechQuery, SpeechRequest
from xtts_balancer.http_tts import (
    speech,
    speech_stream,
    speech_stream_with_timestamps,
    speech_with_timestamps,
)
from xtts_balancer.models_api import ModelResponse, list_models
from xtts_balancer.openai_models import CONTENT_TYPES, OpenAIModelList, SpeechCreate
from xtts_balancer.openai_speech import audio_models, audio_speech
from xtts_balancer.tokens_api import SingleUseTokenResponse, create_single_use_token
from xtts_balancer.voice_search_api import (
    VoiceSearchQuery,
    VoiceSearchResponse,
    default_voice_settings,
    search_voices,
    voice_settings,
)
from xtts_balancer.voices_api import (
    AddVoiceResponse,
    VoiceResponse,
    VoicesResponse,
    add_voice,
    delete_voice,
    get_voice,
    list_voices,
)
from xtts_core.protocol import (
    ErrorResponse,
    OpenAIErrorResponse,
    ValidationErrorResponse,
    VoiceSettings,
)

__all__ = ["ENDPOINTS", "Endpoint", "api_routes", "openapi_document", "openapi_json"]

_AUDIO = ["audio/mpeg", "audio/ogg", "audio/pcm", "audio/basic", "audio/x-alaw-basic", "audio/wav"]
_OPENAI_MEDIA = [*CONTENT_TYPES.values(), "text/event-stream"]
_VOICE_ID = {"name": "voice_id", "in": "path", "required": True, "schema": {"type": "string"}}

_CLONE_FORM = {
    "type": "object",
    "required": ["wav_file"],
    "properties": {"wav_file": {"type": "string", "format": "binary"}},
}


@dataclass(frozen=True)
class Endpoint:
    """One HTTP endpoint: its route and what the description says about it."""

    method: str
    path: str
    handler: Callable[[Request], Awaitable[Response]]
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    multipart: bool = False
    form: dict[str, Any] | None = None
    """The multipart form's schema (``None``: the voice upload's)."""
    response: type[BaseModel] | None = None
    """The JSON answer's model; ``None`` with ``media`` for audio, or with neither for plain OK."""
    media: list[str] = field(default_factory=list)
    array: bool = False
    """The answer is a JSON array of ``response``."""
    errors: tuple[int, ...] = (401,)
    error_body: type[BaseModel] | None = None
    """The body of every error answer; ``None``: ElevenLabs' (422: the validation list)."""


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("POST", "/v1/text-to-speech/{voice_id}", speech, "Speak text: the whole file.",
             SpeechRequest, SpeechQuery, media=_AUDIO, errors=(401, 404, 422, 429)),
    Endpoint("POST", "/v1/text-to-speech/{voice_id}/stream", speech_stream,
             "Speak text: audio streamed as it is made (chunked).", SpeechRequest, SpeechQuery,
             media=[m for m in _AUDIO if m != "audio/wav"], errors=(401, 404, 422, 429)),
    Endpoint("POST", "/v1/text-to-speech/{voice_id}/with-timestamps", speech_with_timestamps,
             "Speak text: the whole file as base64 with character timings.", SpeechRequest,
             SpeechQuery, response=AudioWithTimestamps, errors=(401, 404, 422, 429)),
    Endpoint("POST", "/v1/text-to-speech/{voice_id}/stream/with-timestamps",
             speech_stream_with_timestamps,
             "Speak text: one AudioWithTimestamps JSON object per line as audio is made.",
             SpeechRequest, SpeechQuery, response=AudioWithTimestamps,
             media=["application/x-ndjson"], errors=(401, 404, 422, 429)),
    Endpoint("GET", "/v1/voices", list_voices, "List the voices.", response=VoicesResponse),
    Endpoint("GET", "/v1/voices/{voice_id}", get_voice, "One voice.", response=VoiceResponse,
             errors=(401, 404)),
    Endpoint("POST", "/v1/voices/add", add_voice,
             "Clone a voice from reference audio (multipart: name, files, description, labels).",
             multipart=True, response=AddVoiceResponse, errors=(401, 409, 411, 413, 422)),
    Endpoint("DELETE", "/v1/voices/{voice_id}", delete_voice, "Delete a voice added here.",
             errors=(401, 403, 404)),
    Endpoint("GET", "/v2/voices", search_voices, "Search the voices, a page at a time.",
             query=VoiceSearchQuery, response=VoiceSearchResponse, errors=(401, 422)),
    Endpoint("GET", "/v1/voices/settings/default", default_voice_settings,
             "The voice settings a request without any gets.", response=VoiceSettings),
    Endpoint("GET", "/v1/voices/{voice_id}/settings", voice_settings,
             "A voice's settings (the defaults: none are stored per voice).",
             response=VoiceSettings, errors=(401, 404)),
    Endpoint("GET", "/v1/user", get_user, "The account: one unlimited self-hosted plan.",
             response=UserResponse),
    Endpoint("GET", "/v1/user/subscription", get_subscription,
             "The subscription: one unlimited self-hosted plan.", response=SubscriptionResponse),
    Endpoint("GET", "/v1/models", list_models, "The model this server runs.",
             response=ModelResponse, array=True),
    Endpoint("POST", "/v1/single-use-token/tts_websocket", create_single_use_token,
             "A token that admits one websocket (?single_use_token=) without a key.",
             response=SingleUseTokenResponse),
    Endpoint("POST", "/v1/audio/speech", audio_speech,
             "OpenAI's speech API: audio streamed as it is made (or server-sent events).",
             SpeechCreate, media=_OPENAI_MEDIA,
             errors=(400, 401, 413, 429, 503), error_body=OpenAIErrorResponse),
    Endpoint("GET", "/v1/audio/models", audio_models,
             "The model this server runs, in OpenAI's list shape.", response=OpenAIModelList,
             error_body=OpenAIErrorResponse),
    Endpoint("GET", "/studio_speakers", studio_speakers,
             "coqui: every voice's latents by voice id.", response=CoquiSpeakers,
             errors=(400, 401, 429)),
    Endpoint("POST", "/clone_speaker", clone_speaker,
             "coqui: the latents of a reference clip (multipart: wav_file).", multipart=True,
             form=_CLONE_FORM, response=CoquiSpeaker, errors=(400, 401, 413, 422, 429)),
    Endpoint("POST", "/tts_stream", tts_stream,
             "coqui: speak with these latents, 24 kHz 16-bit PCM streamed as it is made.",
             CoquiStreamRequest, media=["audio/wav", "audio/pcm"],
             errors=(400, 401, 413, 422, 429)),
    Endpoint("POST", "/tts", tts, "coqui: speak with these latents, a base64 WAV.",
             CoquiSpeechRequest, response=CoquiWav, errors=(400, 401, 413, 422, 429)),
    Endpoint("GET", "/languages", languages, "coqui: the language codes spoken.",
             response=CoquiLanguages),
)  # fmt: skip


def api_routes() -> list[Route]:
    """The Starlette routes of :data:`ENDPOINTS` plus ``/openapi.json``."""
    by_path: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {}
    for endpoint in ENDPOINTS:
        by_path.setdefault(endpoint.path, {})[endpoint.method] = endpoint.handler
    routes = [
        Route(path, _dispatch(handlers), methods=list(handlers))
        for path, handlers in by_path.items()
    ]
    routes.append(Route("/openapi.json", openapi_json))
    return routes


def _dispatch(
    handlers: dict[str, Callable[[Request], Awaitable[Response]]],
) -> Callable[[Request], Awaitable[Response]]:
    """One endpoint for a path served with several methods (Starlette routes match by path)."""
    if len(handlers) == 1:
        return next(iter(handlers.values()))

    async def endpoint(request: Request) -> Response:
        return await handlers[request.method](request)

    return endpoint


async def openapi_json(request: Request) -> Response:
    """``GET /openapi.json`` (no key needed: it describes, it does nothing)."""
    return JSONResponse(openapi_document())


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of :data:`ENDPOINTS`."""
    inputs = {m for e in ENDPOINTS for m in (e.body, e.query) if m is not None}
    outputs = {e.response for e in ENDPOINTS if e.response is not None}
    outputs |= {ErrorResponse, ValidationErrorResponse}
    outputs |= {e.error_body for e in ENDPOINTS if e.error_body is not None}
    _, definitions = models_json_schema(
        [(m, "validation") for m in sorted(inputs, key=lambda m: m.__name__)]
        + [(m, "serialization") for m in sorted(outputs, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = definitions["$defs"]
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in ENDPOINTS:
        operation = _operation(endpoint, schemas)
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "xtts-balancer",
            "version": __version__,
            "description": "ElevenLabs-compatible text-to-speech over XTTS-v2 (HTTP endpoints).",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "xi-api-key"}},
        },
        "security": [{"ApiKey": []}],
    }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation(endpoint: Endpoint, schemas: dict[str, Any]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [_VOICE_ID] if "{voice_id}" in endpoint.path else []
    if endpoint.query is not None:
        properties = schemas[endpoint.query.__name__]["properties"]
        parameters += [
            {"name": name, "in": "query", "required": False, "schema": prop}
            for name, prop in properties.items()
        ]
    operation: dict[str, Any] = {"summary": endpoint.summary, "parameters": parameters}
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True, "content": {"application/json": {"schema": _ref(endpoint.body)}},
        }  # fmt: skip
    if endpoint.multipart:
        operation["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": endpoint.form or _ADD_VOICE_FORM}},
        }
    operation["responses"] = {"200": _success(endpoint)} | {
        str(code): {
            "description": "Error",
            "content": {"application/json": {"schema": _ref(_error_model(endpoint, code))}},
        }
        for code in endpoint.errors
    }
    return operation


def _error_model(endpoint: Endpoint, status: int) -> type[BaseModel]:
    if endpoint.error_body is not None:
        return endpoint.error_body
    return ValidationErrorResponse if status == 422 else ErrorResponse


def _success(endpoint: Endpoint) -> dict[str, Any]:
    if endpoint.response is None and not endpoint.media:
        return {
            "description": "OK",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    if endpoint.response is None:
        audio = {"schema": {"type": "string", "format": "binary"}}
        return {"description": "Audio", "content": dict.fromkeys(endpoint.media, audio)}
    schema: dict[str, Any] = _ref(endpoint.response)
    if endpoint.array:
        schema = {"type": "array", "items": schema}
    media = endpoint.media or ["application/json"]
    return {"description": "OK", "content": {m: {"schema": schema} for m in media}}


_ADD_VOICE_FORM = {
    "type": "object",
    "required": ["name", "files"],
    "properties": {
        "name": {"type": "string"},
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "description": {"type": "string"},
        "labels": {"type": "string", "description": "A JSON object of string labels."},
    },
}
