"""The balancer's side of the fleet's voice library: the brokers read and write it here.

Routes (broker mode only; a standalone balancer answers 404 as if they did not exist), each
request signed by a broker with the cluster secret over method, path and body
(:func:`xtts_core.cluster.verify_request`) and accepted once (the replay guard):

- ``GET /cluster/voices``: the library's manifest (added voices and tombstones).
- ``GET /cluster/voices/{voice_id}``: an added voice's clip, its sidecar in a header.
- ``PUT /cluster/voices/{voice_id}``: store a copy made elsewhere, unless this library holds a
  record of the id at least as new (then ``{"status": "unchanged"}``).
- ``DELETE /cluster/voices/{voice_id}``: drop the voice and leave a tombstone of the delete's
  time, unless the voice here was added after it.

The last-writer-wins rules and wire shapes are :mod:`xtts_core.cluster_voices`'. Refusals are
4xx ``{"detail": "<one line>"}``, the shape of the broker's own cluster endpoints.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from xtts_balancer.state import BalancerState, balancer_state
from xtts_balancer.voice_store import (
    LIBRARY_RATE,
    deleted_at,
    manifest,
    read_meta,
    remove,
    sidecar_path,
    store_wav,
    tombstone,
)
from xtts_balancer.voices_api import MAX_SECONDS
from xtts_core.cluster import OriginError, verify_request
from xtts_core.cluster_voices import (
    CLUSTER_VOICES_PATH,
    VOICE_META_HEADER,
    VoiceDeletion,
    decode_meta,
    encode_meta,
)

__all__ = ["cluster_voice_routes"]

logger = logging.getLogger(__name__)

#: Largest body: the longest clip as 16-bit mono at the library rate, plus its WAV header.
MAX_CLIP_BYTES = int(MAX_SECONDS * LIBRARY_RATE) * 2 + 4096


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


async def _verified(request: Request) -> tuple[BalancerState, bytes] | JSONResponse:
    """The state and body of a broker's signed request, or the refusal to send."""
    state = balancer_state(request)
    secret = state.settings.cluster.secret
    if state.broker is None or secret is None:
        return _error(404, "Not Found")
    if int(request.headers.get("content-length") or 0) > MAX_CLIP_BYTES:
        return _error(413, f"body larger than {MAX_CLIP_BYTES} bytes")
    try:
        body = await request.body()
    except ClientDisconnect:
        return _error(400, "the request body did not arrive")
    if len(body) > MAX_CLIP_BYTES:
        return _error(413, f"body larger than {MAX_CLIP_BYTES} bytes")
    try:
        nonce = verify_request(
            secret.get_secret_value(), request.method, request.scope["path"], request.headers,
            body=body, max_skew_s=state.settings.cluster.max_clock_skew_s,
        )  # fmt: skip
        state.replay_guard.claim(nonce)
    except OriginError as exc:
        return _error(401, str(exc))
    return state, body


async def _manifest(request: Request) -> Response:
    verified = await _verified(request)
    if isinstance(verified, Response):
        return verified
    state, _ = verified
    listing = await asyncio.to_thread(manifest, state.settings.model.voices_dir)
    return JSONResponse(listing.model_dump(mode="json"))


async def _voice(request: Request) -> Response:
    """``GET``, ``PUT`` and ``DELETE`` of one voice (module docstring)."""
    verified = await _verified(request)
    if isinstance(verified, Response):
        return verified
    state, body = verified
    library = state.settings.model.voices_dir
    voice_id: str = request.path_params["voice_id"]
    if library is None:
        return _error(409, "this balancer has no voice library (model.voices_dir)")
    if sidecar_path(library, voice_id) is None:
        return _error(422, f"{voice_id!r} is not a voice id")
    async with state.library_lock:  # the check and the change together (voice_store's invariant)
        return await _change(request, state, library, voice_id, body)


async def _change(
    request: Request, state: BalancerState, library: Path, voice_id: str, body: bytes
) -> Response:
    """The answer to a request for one voice, decided and made under the library lock."""
    try:
        held = read_meta(library, voice_id)
    except (OSError, ValidationError) as exc:
        return _error(500, f"the sidecar of {voice_id} is unreadable: {exc}")
    held_at = None if held is None else held.changed_at or float(held.created_unix)
    if request.method == "GET":
        if held is None:
            return _error(404, f"no added voice {voice_id}")
        wav = await asyncio.to_thread((library / f"{voice_id}.wav").read_bytes)
        return Response(wav, media_type="audio/wav", headers={VOICE_META_HEADER: encode_meta(held)})
    gone_at = deleted_at(library, voice_id)
    if request.method == "PUT":
        try:
            meta = decode_meta(request.headers.get(VOICE_META_HEADER))
        except ValueError as exc:
            return _error(422, str(exc))
        newer = [at for at in (held_at, gone_at) if at is not None and at >= meta.changed_at]
        if newer:
            return JSONResponse({"status": "unchanged"})
        try:
            await asyncio.to_thread(store_wav, library, voice_id, body, meta)
        except ValueError as exc:
            return _error(422, str(exc))
        state.supervisor.add_voice(voice_id)
        logger.info("stored voice %s (%r) copied from the fleet", voice_id, meta.name)
        return JSONResponse({"status": "stored"})
    try:
        deletion = VoiceDeletion.model_validate_json(body)
    except ValidationError as exc:
        return _error(422, f"invalid VoiceDeletion: {exc.errors(include_url=False)[0]['msg']}")
    if (held_at is not None and held_at > deletion.at) or (
        gone_at is not None and gone_at >= deletion.at
    ):
        return JSONResponse({"status": "unchanged"})
    if held is not None:
        state.supervisor.remove_voice(voice_id)
        remove(library, voice_id)
        logger.info("deleted voice %s, as the fleet did", voice_id)
    tombstone(library, voice_id, deletion.at)
    return JSONResponse({"status": "deleted"})


def cluster_voice_routes() -> list[Route]:
    """The routes of the module docstring."""
    return [
        Route(CLUSTER_VOICES_PATH, _manifest, methods=["GET"]),
        Route(f"{CLUSTER_VOICES_PATH}/{{voice_id}}", _voice, methods=["GET", "PUT", "DELETE"]),
    ]
