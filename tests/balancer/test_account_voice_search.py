"""The SDK's voice search, voice settings and account look-ups against the shared real server.

The shared server (conftest.py) serves the clip ``narrator`` (cloned) and the tiny checkpoint's
speakers ``Random Speaker`` and ``Other Speaker`` (premade).
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import soundfile
from balancer_server import CLIP_VOICE, KEY, Server
from elevenlabs.client import ElevenLabs
from elevenlabs.core.api_error import ApiError

HEADERS = {"xi-api-key": KEY}
SPEAKERS = {"Random Speaker", "Other Speaker"}


@pytest.fixture
def client(server: Server) -> Iterator[ElevenLabs]:
    with httpx.Client(timeout=60) as http:
        yield ElevenLabs(api_key=KEY, base_url=server.http_url, httpx_client=http)


def all_pages(client: ElevenLabs, page_size: int, search: str | None = None) -> list[list[str]]:
    """The voice ids of every page of ``voices.search``, following ``next_page_token``."""
    pages: list[list[str]] = []
    token: str | None = None
    while True:
        page = client.voices.search(search=search, page_size=page_size, next_page_token=token)
        pages.append([voice.voice_id for voice in page.voices])
        if not page.has_more:
            assert page.next_page_token is None
            return pages
        assert page.next_page_token is not None
        token = page.next_page_token
        assert len(pages) < 10, "the token never ended the paging"


def test_search_pages_through_every_voice_once(client: ElevenLabs) -> None:
    listed = sorted(voice.voice_id for voice in client.voices.get_all().voices)
    assert {CLIP_VOICE, *SPEAKERS} <= set(listed)
    pages = all_pages(client, page_size=1)
    assert all(len(page) == 1 for page in pages)
    assert [voice for page in pages for voice in page] == listed
    whole = client.voices.search(page_size=100)
    assert whole.total_count == len(listed) and not whole.has_more
    assert {voice.voice_id: voice.category for voice in whole.voices}[CLIP_VOICE] == "cloned"


def test_search_matches_names_case_insensitively(client: ElevenLabs) -> None:
    found = client.voices.search(search="SPEAKER", page_size=1)
    assert found.total_count == 2 and found.has_more
    assert {v for page in all_pages(client, 1, search="speaker") for v in page} == SPEAKERS
    assert [v.voice_id for v in client.voices.search(search="arrat").voices] == [CLIP_VOICE]
    none = client.voices.search(search="no voice is called this")
    assert none.voices == [] and none.total_count == 0 and not none.has_more


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "101"}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"next_page_token": "%%%"}, "next_page_token"),
    ],
)
def test_search_refuses_a_bad_query_naming_the_field(
    server: Server, query: dict[str, str], field: str
) -> None:
    response = httpx.get(f"{server.http_url}/v2/voices", params=query, headers=HEADERS)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]


def test_voice_settings_are_the_defaults_of_known_voices(client: ElevenLabs) -> None:
    default = client.voices.settings.get_default()
    assert (default.stability, default.similarity_boost, default.style) == (0.5, 0.75, 0.0)
    assert (default.use_speaker_boost, default.speed) == (True, 1.0)
    assert client.voices.settings.get(CLIP_VOICE) == default
    assert client.voices.settings.get("Random Speaker") == default
    with pytest.raises(ApiError) as unknown:
        client.voices.settings.get("no-such-voice")
    assert unknown.value.status_code == 404
    assert isinstance(unknown.value.body, dict)
    assert unknown.value.body["detail"]["status"] == "voice_not_found"


def wav_bytes(seconds: float = 1.5, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    out = io.BytesIO()
    soundfile.write(out, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, "PCM_16",
                    format="WAV")  # fmt: skip
    return out.getvalue()


def test_user_and_subscription_describe_an_unlimited_plan(
    client: ElevenLabs, server: Server
) -> None:
    user = client.user.get()
    assert user.user_id and user.workspace_id
    plan = user.subscription
    assert (plan.tier, plan.status, plan.character_limit) == ("self_hosted", "active", 2**31 - 1)
    assert plan.can_use_instant_voice_cloning  # the shared server has a voices_dir
    assert plan.max_credit_limit_extension == "unlimited"
    subscription = client.user.subscription.get()
    assert subscription.tier == "self_hosted" and subscription.open_invoices == []
    assert subscription.voice_limit == 2**31 - 1
    before = subscription.voice_slots_used
    added = httpx.post(
        f"{server.http_url}/v1/voices/add", data={"name": "Slot user"},
        files=[("files", ("clip.wav", wav_bytes(), "audio/wav"))], headers=HEADERS, timeout=60,
    )  # fmt: skip
    assert added.status_code == 200, added.text
    try:
        assert client.user.subscription.get().voice_slots_used == before + 1
        assert client.user.get().subscription.voice_slots_used == before + 1
    finally:
        client.voices.delete(added.json()["voice_id"])
    assert client.user.subscription.get().voice_slots_used == before


@pytest.mark.parametrize(
    "path",
    [
        "/v2/voices",
        "/v1/voices/settings/default",
        f"/v1/voices/{CLIP_VOICE}/settings",
        "/v1/user",
        "/v1/user/subscription",
    ],
)
def test_every_look_up_needs_a_key(server: Server, path: str) -> None:
    assert server.get(path).status_code == 401
    refused = httpx.get(server.http_url + path, headers={"xi-api-key": "not-a-key"})
    assert refused.status_code == 401
    assert refused.json()["detail"]["status"] == "invalid_api_key"
    assert httpx.get(server.http_url + path, headers=HEADERS).status_code == 200
