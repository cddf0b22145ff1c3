"""Voice look-ups of the ElevenLabs SDK beyond the v1 list: ``GET /v2/voices`` (``voices.search``),
``GET /v1/voices/{voice_id}/settings`` and ``GET /v1/voices/settings/default``
(``voices.settings.get`` / ``get_default``), in ElevenLabs' shapes (docs/protocol.md §4.3).

``/v2/voices`` pages through the voices of :func:`~xtts_balancer.voices_api.voice_entries`,
ordered by voice id. ``search`` keeps the voices whose name, description, category or a label
value contains it (case-insensitive), as ElevenLabs searches. ``next_page_token`` is the
base64url of the last voice id of the previous page, and a page starts after that id, so a token
stays valid while voices are added or deleted and means the same on every balancer behind a
broker. The other filters ElevenLabs offers (``voice_type``, ``category``, ``sort``, ...) are
accepted and ignored; ``total_count`` is always given.

The settings endpoints answer the voice settings a request gets when it sends none: this server
stores no settings per voice, so every known voice has the defaults.
"""

from __future__ import annotations

import base64

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from xtts_balancer.http_common import ApiError, check_caller, parse_model
from xtts_balancer.voices_api import VoiceResponse, require_voice, voice_entries
from xtts_core.protocol import VoiceSettings

__all__ = [
    "VoiceSearchQuery",
    "VoiceSearchResponse",
    "default_voice_settings",
    "search_voices",
    "voice_settings",
]

#: The page size ElevenLabs uses when a request names none, and its largest.
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 10, 100
#: The settings a request that sends none is spoken with.
_DEFAULTS = VoiceSettings.model_validate({})


class VoiceSearchQuery(BaseModel):
    """Query parameters of ``GET /v2/voices`` this server acts on; the others are ignored."""

    model_config = ConfigDict(extra="ignore")

    search: str | None = Field(None, max_length=1000)
    """Kept: voices whose name, description, category or a label value contains it."""
    page_size: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    next_page_token: str | None = Field(None, max_length=200)
    """The previous page's ``next_page_token``."""


class VoiceSearchResponse(BaseModel):
    """ElevenLabs' ``GetVoicesV2Response``."""

    voices: list[VoiceResponse]
    has_more: bool
    total_count: int
    next_page_token: str | None = None


def _token(voice_id: str) -> str:
    return base64.urlsafe_b64encode(voice_id.encode()).decode().rstrip("=")


def _after(token: str) -> str:
    """The voice id a ``next_page_token`` names; 422 for a token this server did not make."""
    padded = token + "=" * (-len(token) % 4)
    try:
        voice_id = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except ValueError:  # binascii.Error, UnicodeDecodeError
        voice_id = ""
    if not voice_id:
        raise ApiError.invalid(
            ["query", "next_page_token"], "next_page_token is not a token this server gave"
        )
    return voice_id


def _matches(voice: VoiceResponse, needle: str) -> bool:
    fields = [voice.name, voice.description or "", voice.category, *voice.labels.values()]
    return any(needle in value.casefold() for value in fields)


async def search_voices(request: Request) -> Response:
    """``GET /v2/voices`` (see the module docstring)."""
    check_caller(request)
    query = parse_model(VoiceSearchQuery, dict(request.query_params), "query")
    voices = voice_entries(request)
    if query.search and query.search.strip():
        needle = query.search.strip().casefold()
        voices = [voice for voice in voices if _matches(voice, needle)]
    total = len(voices)
    if query.next_page_token:
        after = _after(query.next_page_token)
        voices = [voice for voice in voices if voice.voice_id > after]
    page = voices[: query.page_size]
    has_more = len(voices) > len(page)
    body = VoiceSearchResponse(
        voices=page,
        has_more=has_more,
        total_count=total,
        next_page_token=_token(page[-1].voice_id) if has_more else None,
    )
    return JSONResponse(body.model_dump(mode="json"))


async def voice_settings(request: Request) -> Response:
    """``GET /v1/voices/{voice_id}/settings``: the defaults, for a voice the workers serve (or
    an alias of one)."""
    check_caller(request)
    require_voice(request, request.path_params["voice_id"])
    return JSONResponse(_DEFAULTS.model_dump(mode="json"))


async def default_voice_settings(request: Request) -> Response:
    """``GET /v1/voices/settings/default``."""
    check_caller(request)
    return JSONResponse(_DEFAULTS.model_dump(mode="json"))
