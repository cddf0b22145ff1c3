"""The account look-ups of the ElevenLabs SDK: ``GET /v1/user`` (``user.get``) and
``GET /v1/user/subscription`` (``user.subscription.get``), in ElevenLabs' shapes (§4.3).

A self-hosted server has no accounts or billing, so both describe one unlimited plan: tier
``self_hosted``, status ``active``, character and voice limits of :data:`UNLIMITED`, nothing owed.
``character_count`` is the characters this balancer has spoken since it started (the
``xtts_characters_total`` metric), and the count never resets.
Instant voice cloning is available exactly when ``model.voices_dir`` is set (``POST
/v1/voices/add``), and ``voice_slots_used`` counts the voices added that way. Every balancer
answers the same user and workspace id, so the answer does not depend on which one a broker asks.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from xtts_balancer.http_common import check_caller
from xtts_balancer.state import balancer_state
from xtts_balancer.voices_api import ADDED_VOICE_SUFFIX

__all__ = [
    "UNLIMITED",
    "Price",
    "SubscriptionResponse",
    "UserResponse",
    "get_subscription",
    "get_user",
]

#: The limit reported for what is not limited: the largest 32-bit integer, so clients that
#: subtract the count from it, in any language, never see it run out.
UNLIMITED = 2**31 - 1
#: The user and workspace id of the one self-hosted account.
ACCOUNT_ID = "self-hosted"
#: When this process started serving: the account's ``created_at``.
_STARTED_UNIX = int(time.time())


class Price(BaseModel):
    """ElevenLabs' ``Price`` (an amount as a decimal string and its currency)."""

    amount: str = "0"
    currency: str = "usd"


class SubscriptionResponse(BaseModel):
    """ElevenLabs' ``Subscription`` (the fields its SDK requires, and those clients read)."""

    tier: str = "self_hosted"
    character_count: int = 0
    character_limit: int = UNLIMITED
    max_character_limit_extension: int | None = None
    max_credit_limit_extension: int | str = "unlimited"
    can_extend_character_limit: bool = False
    allowed_to_extend_character_limit: bool = False
    next_character_count_reset_unix: int | None = None
    voice_slots_used: int
    professional_voice_slots_used: int = 0
    professional_voice_slots_used_in_workspace: int = 0
    voice_limit: int
    voice_add_edit_counter: int
    professional_voice_limit: int = 0
    can_extend_voice_limit: bool = False
    can_use_instant_voice_cloning: bool
    can_use_professional_voice_cloning: bool = False
    currency: str = "usd"
    current_overage: Price = Field(default_factory=Price)
    status: str = "active"
    open_invoices: list[dict[str, str]] = Field(default_factory=list)
    has_open_invoices: bool = False


class UserResponse(BaseModel):
    """ElevenLabs' ``User`` (the fields its SDK requires)."""

    user_id: str = ACCOUNT_ID
    workspace_id: str = ACCOUNT_ID
    subscription: SubscriptionResponse
    is_new_user: bool = False
    can_use_delayed_payment_methods: bool = False
    is_onboarding_completed: bool = True
    is_onboarding_checklist_completed: bool = True
    created_at: int = _STARTED_UNIX
    seat_type: str = "workspace_admin"


def _subscription(request: Request) -> SubscriptionResponse:
    state = balancer_state(request)
    library = state.settings.model.voices_dir
    added = len(list(library.glob(f"*{ADDED_VOICE_SUFFIX}"))) if library is not None else 0
    return SubscriptionResponse(
        character_count=state.metrics.characters_spoken(),
        voice_slots_used=added,
        voice_limit=UNLIMITED if library is not None else 0,
        voice_add_edit_counter=added,
        can_use_instant_voice_cloning=library is not None,
    )


async def get_user(request: Request) -> Response:
    """``GET /v1/user``."""
    check_caller(request)
    user = UserResponse(subscription=_subscription(request))
    return JSONResponse(user.model_dump(mode="json"))


async def get_subscription(request: Request) -> Response:
    """``GET /v1/user/subscription``."""
    check_caller(request)
    return JSONResponse(_subscription(request).model_dump(mode="json"))
