"""The official ElevenLabs SDK over wss:// against the shared server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from balancer_server import CLIP_VOICE, KEY, Server
from elevenlabs import VoiceSettings
from elevenlabs.client import ElevenLabs

# elevenlabs 2.78.0 reads ConnectionClosed.code and .reason, which websockets deprecates.
sdk_warning = pytest.mark.filterwarnings(
    "ignore:ConnectionClosed.(code|reason) is deprecated:DeprecationWarning"
)


@sdk_warning
def test_official_sdk_realtime_helper_streams_and_ends(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert server.ca_file is not None
    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))  # the SDK's default TLS context
    client = ElevenLabs(api_key=KEY, base_url=server.tls_url)

    def pieces() -> Iterator[str]:
        yield "Hello from the official SDK, "
        yield "talking to our server."

    audio = b"".join(
        client.text_to_speech.convert_realtime(
            voice_id=CLIP_VOICE, text=pieces(), output_format="pcm_16000",
            voice_settings=VoiceSettings(stability=0.5, similarity_boost=0.8),
        )
    )  # fmt: skip
    assert len(audio) > 0 and len(audio) % 2 == 0


@sdk_warning
def test_official_sdk_sees_an_error_as_api_error(server: Server) -> None:
    """Over plain ws via the SDK's private ``_ws_base_url`` (protocol spec §5.3 b): one TLS test
    is enough, and the sync websockets client reads and writes one TLS socket from two threads,
    which CPython's ssl module does not make safe."""
    from elevenlabs.core.api_error import ApiError

    client = ElevenLabs(api_key="not-a-key", base_url=server.http_url)
    client.text_to_speech._ws_base_url = f"ws://127.0.0.1:{server.port}"  # pinned SDK 2.78.0
    with pytest.raises(ApiError) as info:
        b"".join(client.text_to_speech.convert_realtime(voice_id=CLIP_VOICE, text=iter(["Hi."])))
    assert info.value.status_code == 1008
