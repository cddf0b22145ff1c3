"""``GET /v1/models``: the one model this server runs, in ElevenLabs' ``Model`` shape (§4.3).

The list is a JSON array, as ElevenLabs answers. Its first entry is :data:`MODEL_ID`; then each
of :data:`ELEVENLABS_MODEL_IDS`, the ids clients are configured with, as another name of the same
model (same languages and limits, its ``name`` saying so), so a client that looks its configured
model up by id (Home Assistant's set-up does) finds it. Languages are the loaded checkpoint's
(the 17 of XTTS-v2 until a worker is ready), each with ``language_id`` and ``name``, which the JS
SDK requires. ``model_id`` values that clients send are accepted by the speech endpoints
whatever they name; they are logged, since only this model speaks.
"""

from __future__ import annotations

import functools
import logging

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from xtts_balancer.http_common import check_caller
from xtts_balancer.state import balancer_state
from xtts_core.config import XTTS_V2_LANGUAGES

__all__ = [
    "ELEVENLABS_MODEL_IDS",
    "MODEL_ID",
    "Language",
    "ModelResponse",
    "list_models",
    "note_model_id",
]

logger = logging.getLogger(__name__)

#: The id this server reports for the model it runs.
MODEL_ID = "xtts_v2"
#: ElevenLabs' model ids that clients configure, listed as names of :data:`MODEL_ID`.
ELEVENLABS_MODEL_IDS = (
    "eleven_multilingual_v2", "eleven_flash_v2_5", "eleven_turbo_v2_5", "eleven_flash_v2",
    "eleven_turbo_v2", "eleven_v3", "eleven_multilingual_v1", "eleven_monolingual_v1",
)  # fmt: skip

_LISTED_IDS = (MODEL_ID, *ELEVENLABS_MODEL_IDS)

_LANGUAGE_NAMES = {
    "en": "English", "es": "Spanish", "fr": "French", "de": "German", "it": "Italian",
    "pt": "Portuguese", "pl": "Polish", "tr": "Turkish", "ru": "Russian", "nl": "Dutch",
    "cs": "Czech", "ar": "Arabic", "zh": "Chinese", "zh-cn": "Chinese", "hu": "Hungarian",
    "ko": "Korean", "ja": "Japanese", "hi": "Hindi",
}  # fmt: skip


@functools.lru_cache(maxsize=256)
def note_model_id(model_id: str | None) -> None:
    """Log, once per distinct id, that a client asked for a model this server does not run."""
    if model_id is not None and model_id != MODEL_ID:
        logger.info("model_id %r requested; speaking with %s", model_id, MODEL_ID)


class Language(BaseModel):
    language_id: str
    name: str


class ModelResponse(BaseModel):
    """One entry of ``GET /v1/models`` (the fields of ElevenLabs' ``ModelResponseModel``)."""

    model_config = {"protected_namespaces": ()}

    model_id: str
    name: str
    can_be_finetuned: bool
    can_do_text_to_speech: bool
    can_do_voice_conversion: bool
    can_use_style: bool
    can_use_speaker_boost: bool
    serves_pro_voices: bool
    token_cost_factor: float
    description: str
    requires_alpha_access: bool
    max_characters_request_free_user: int
    max_characters_request_subscribed_user: int
    maximum_text_length_per_request: int
    languages: list[Language]
    model_rates: dict[str, float]
    concurrency_group: str


def model_response(
    languages: list[str], max_text_chars: int, model_id: str = MODEL_ID
) -> ModelResponse:
    """The entry for ``model_id``: :data:`MODEL_ID` or one of its ElevenLabs names."""
    name = "XTTS-v2" if model_id == MODEL_ID else f"XTTS-v2 (as {model_id})"
    return ModelResponse(
        model_id=model_id, name=name, can_be_finetuned=False, can_do_text_to_speech=True,
        can_do_voice_conversion=False, can_use_style=False, can_use_speaker_boost=False,
        serves_pro_voices=False, token_cost_factor=1.0,
        description="Coqui XTTS-v2: multilingual zero-shot voice cloning, streamed.",
        requires_alpha_access=False, max_characters_request_free_user=max_text_chars,
        max_characters_request_subscribed_user=max_text_chars,
        maximum_text_length_per_request=max_text_chars,
        languages=[
            Language(language_id=code, name=_LANGUAGE_NAMES.get(code, code)) for code in languages
        ],
        model_rates={"character_cost_multiplier": 1.0}, concurrency_group="standard",
    )  # fmt: skip


async def list_models(request: Request) -> Response:
    """``GET /v1/models``."""
    check_caller(request)
    state = balancer_state(request)
    loaded = state.supervisor.languages
    languages = [code for code in XTTS_V2_LANGUAGES if not loaded or code in loaded]
    languages += sorted(loaded.difference(XTTS_V2_LANGUAGES))
    limit = state.settings.limits.max_text_chars
    models = [model_response(languages, limit, model_id) for model_id in _LISTED_IDS]
    return JSONResponse([model.model_dump(mode="json") for model in models])
