"""Voices: ``GET /v1/voices``, ``GET /v1/voices/{voice_id}``, ``POST /v1/voices/add`` and
``DELETE /v1/voices/{voice_id}`` in ElevenLabs' shapes (docs/protocol.md §4.3).

The voices are those the workers serve: clips of ``model.voices_dir`` and ``model.ref_file``
(category ``cloned``) and the checkpoint's named speakers (``premade``); ``default`` is an alias
and not listed. ``POST /v1/voices/add`` takes multipart ``name`` plus one or more ``files``
(optional ``description`` and ``labels``, a JSON object of strings). Every file must decode as
audio (PyAV, so any format FFmpeg reads; this is the type check) and the request must fit in
``limits.max_upload_bytes``. The clips are joined into one 22.05 kHz WAV with a JSON sidecar for
the name, in ``model.voices_dir`` (:mod:`xtts_balancer.voice_store`). The id is a hash of the
uploaded files and the clone settings, so the same upload has the same id on every balancer and
adding it again only renames it; uploaded file names never become paths, so nothing is written
outside the library. The voice is usable at once: the front process knows the id, and each worker
clones a library clip the first time a job asks for it. Only voices added this way can be
deleted; in broker mode a delete leaves a tombstone, so the fleet's other balancers learn of it
(:mod:`xtts_core.cluster_voices`).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from pathlib import Path

import av
import numpy as np
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from xtts_balancer.backends.base import AUDIO_SUFFIXES, DEFAULT_VOICE_ID
from xtts_balancer.errors import SessionError
from xtts_balancer.http_common import ApiError, check_caller
from xtts_balancer.state import balancer_state
from xtts_balancer.voice_store import (
    ADDED_VOICE_SUFFIX,
    GAP_SECONDS,
    LIBRARY_RATE,
    content_id,
    read_meta,
    remove,
    store,
    tombstone,
)
from xtts_core.cluster_voices import VoiceMeta
from xtts_core.protocol import ErrorCode, VoiceSettings

__all__ = [
    "ADDED_VOICE_SUFFIX",
    "AddVoiceResponse",
    "VoiceResponse",
    "VoicesResponse",
    "add_voice",
    "delete_voice",
    "get_voice",
    "list_voices",
    "require_voice",
    "voice_entries",
]

logger = logging.getLogger(__name__)

#: Reference files one request may carry (ElevenLabs' instant cloning takes up to 25).
MAX_FILES = 25
#: Shortest and longest reference audio accepted, all files together, in seconds.
MIN_SECONDS, MAX_SECONDS = 0.5, 600.0


class VoiceResponse(BaseModel):
    """One voice (the fields of ElevenLabs' ``VoiceResponseModel`` that clients read)."""

    voice_id: str
    name: str
    category: str
    labels: dict[str, str] = Field(default_factory=dict)
    description: str | None = None
    preview_url: str | None = None
    available_for_tiers: list[str] = Field(default_factory=list)
    settings: VoiceSettings | None = None
    high_quality_base_model_ids: list[str] = Field(default_factory=list)


class VoicesResponse(BaseModel):
    voices: list[VoiceResponse]


class AddVoiceResponse(BaseModel):
    voice_id: str
    requires_verification: bool = False


def _library(request: Request) -> Path | None:
    return balancer_state(request).settings.model.voices_dir


def _clip_ids(request: Request) -> set[str]:
    """Ids of the voices cloned from the server's own clips (``voices_dir``, ``ref_file``)."""
    library = _library(request)
    clips = (
        {p.stem for p in library.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES}
        if library
        else set()
    )
    ref_file = balancer_state(request).settings.model.ref_file
    if ref_file is not None:
        clips.add(ref_file.stem)
    return clips


def _describe(request: Request, voice_id: str, clips: set[str]) -> VoiceResponse:
    library = _library(request)
    added = read_meta(library, voice_id) if library is not None else None
    if added is not None:
        return VoiceResponse(
            voice_id=voice_id, name=added.name, category="cloned", labels=added.labels,
            description=added.description,
        )  # fmt: skip
    category = "cloned" if voice_id in clips else "premade"
    return VoiceResponse(voice_id=voice_id, name=voice_id, category=category)


def require_voice(request: Request, voice_id: str, *, fallback: bool = True) -> str:
    """The served voice ``voice_id`` names (itself, an alias's voice, or with the fallback the
    default voice: :class:`~xtts_balancer.voice_names.VoiceNames`); 404 ``voice_not_found``
    when none."""
    state = balancer_state(request)
    tag = f"{request.method} {request.url.path}"
    try:
        resolved: str | None = state.voice_names.resolve(voice_id, tag, fallback=fallback)
    except SessionError:
        resolved = None
    if resolved is None or resolved not in state.supervisor.voices:
        raise ApiError(
            ErrorCode.VOICE_NOT_FOUND, f"A voice for the voice_id {voice_id} was not found."
        )
    return resolved


def voice_entries(request: Request) -> list[VoiceResponse]:
    """Every listed voice, ordered by id (``default`` is an alias and not listed)."""
    ids = sorted(balancer_state(request).supervisor.voices - {DEFAULT_VOICE_ID})
    clips = _clip_ids(request)
    return [_describe(request, voice_id, clips) for voice_id in ids]


async def list_voices(request: Request) -> Response:
    """``GET /v1/voices``."""
    check_caller(request)
    body = VoicesResponse(voices=voice_entries(request))
    return JSONResponse(body.model_dump(mode="json"))


async def get_voice(request: Request) -> Response:
    """``GET /v1/voices/{voice_id}``."""
    check_caller(request)
    voice_id = require_voice(request, request.path_params["voice_id"])
    voice = _describe(request, voice_id, _clip_ids(request))
    return JSONResponse(voice.model_dump(mode="json"))


async def delete_voice(request: Request) -> Response:
    """``DELETE /v1/voices/{voice_id}``: only voices added through the API."""
    check_caller(request)
    voice_id = require_voice(request, request.path_params["voice_id"], fallback=False)
    state = balancer_state(request)
    library = _library(request)
    async with state.library_lock:
        if library is None or read_meta(library, voice_id) is None:
            raise ApiError(
                ErrorCode.VOICE_NOT_DELETABLE,
                f"Voice {voice_id} comes from the server's configuration and cannot be deleted.",
            )
        state.supervisor.remove_voice(voice_id)
        remove(library, voice_id)
        if state.broker is not None:
            tombstone(library, voice_id, time.time())
    logger.info("deleted voice %s", voice_id)
    return JSONResponse({"status": "ok"})


async def add_voice(request: Request) -> Response:
    """``POST /v1/voices/add`` (see the module docstring)."""
    check_caller(request)
    state = balancer_state(request)
    library = state.settings.model.voices_dir
    if library is None:
        raise ApiError(
            ErrorCode.VOICE_LIBRARY_DISABLED,
            "This server has no voice library (model.voices_dir); voices cannot be added.",
        )
    limit = state.settings.limits.max_upload_bytes
    length = request.headers.get("content-length")
    if length is None:
        raise ApiError(ErrorCode.LENGTH_REQUIRED, "Send the upload with a Content-Length.")
    if not length.isdigit() or int(length) > limit:
        raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"The upload is larger than {limit} bytes.")
    try:
        form = await request.form(max_files=MAX_FILES, max_fields=20)
    except HTTPException as exc:  # Starlette's answer to a MultiPartException
        raise ApiError.invalid(["body"], f"malformed multipart body: {exc.detail}") from None
    uploads = [item for item in form.getlist("files") if isinstance(item, UploadFile)]
    if not uploads:
        raise ApiError.invalid(["body", "files"], "at least one reference audio file is required")
    meta = _metadata(form.get("name"), form.get("description"), form.get("labels"))
    contents = [await upload.read() for upload in uploads]
    if sum(len(data) for data in contents) > limit:
        raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"The upload is larger than {limit} bytes.")
    names = [upload.filename or f"file {i + 1}" for i, upload in enumerate(uploads)]
    clip = await asyncio.to_thread(_join_clips, contents, names)
    voice_id = content_id(contents)
    async with state.library_lock:
        await asyncio.to_thread(store, library, voice_id, clip, meta)
        state.supervisor.add_voice(voice_id)
    logger.info("added voice %s (%r, %d files)", voice_id, meta.name, len(uploads))
    return JSONResponse(AddVoiceResponse(voice_id=voice_id).model_dump(mode="json"))


def _metadata(name: object, description: object, labels: object) -> VoiceMeta:
    if not isinstance(name, str) or not name.strip():
        raise ApiError.invalid(["body", "name"], "name is required")
    parsed_labels: object = {}
    if isinstance(labels, str) and labels.strip():
        try:
            parsed_labels = json.loads(labels) or {}  # the SDK sends "null" when none are set
        except (ValueError, RecursionError):  # RecursionError: nesting too deep
            raise ApiError.invalid(["body", "labels"], "labels must be a JSON object") from None
    try:
        now = time.time()
        return VoiceMeta.model_validate(
            {
                "name": name.strip(),
                "description": description if isinstance(description, str) else None,
                "labels": parsed_labels,
                "created_unix": int(now),
                "changed_at": now,
            }
        )
    except ValidationError as exc:
        raise ApiError.from_pydantic(exc, "body") from None


def _decode(data: bytes, name: str) -> np.ndarray:
    """Mono float32 at :data:`LIBRARY_RATE` (at most :data:`MAX_SECONDS`); 422 if not audio."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=LIBRARY_RATE)
    parts: list[np.ndarray] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), "r") as container:
            if not container.streams.audio:
                raise ApiError.invalid(["body", "files"], f"{name} has no audio")
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1))
                    total += parts[-1].size
                if total > MAX_SECONDS * LIBRARY_RATE:
                    raise ApiError.invalid(
                        ["body", "files"], f"{name} is longer than {MAX_SECONDS:g} s"
                    )
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1))
    except (av.error.FFmpegError, ValueError) as exc:
        raise ApiError.invalid(
            ["body", "files"], f"{name} is not audio that can be decoded ({exc})"
        ) from None
    samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if not np.isfinite(samples).all():
        raise ApiError.invalid(["body", "files"], f"{name} holds NaN or infinite samples")
    return samples.astype(np.float32)


def _join_clips(contents: list[bytes], names: list[str]) -> np.ndarray:
    gap = np.zeros(int(GAP_SECONDS * LIBRARY_RATE), np.float32)
    clips = [_decode(data, name) for data, name in zip(contents, names, strict=True)]
    joined = np.concatenate([part for clip in clips for part in (clip, gap)][:-1])
    if joined.size < MIN_SECONDS * LIBRARY_RATE:
        raise ApiError.invalid(
            ["body", "files"], f"the reference audio is shorter than {MIN_SECONDS:g} s"
        )
    if joined.size > MAX_SECONDS * LIBRARY_RATE:
        raise ApiError.invalid(
            ["body", "files"], f"the reference audio is longer than {MAX_SECONDS:g} s"
        )
    return joined
