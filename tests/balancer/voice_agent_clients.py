"""pipecat's ``ElevenLabsTTSService`` and livekit's ElevenLabs plugin, unmodified but for their
URL, driven and judged the same way against a balancer (test_pipecat_client.py,
test_livekit_client.py) and through the broker (tests/broker/test_broker_voice_agents.py).

Each client lives in its own Hatch env; the ``*_modules`` functions import it or skip.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from balancer_server import CLIP_VOICE

__all__ = [
    "assert_livekit_speaks",
    "assert_pipecat_speaks",
    "assert_pipecat_xtts_speaks",
    "livekit_modules",
    "pipecat_modules",
]

#: Enough audio to be speech, not a click: 0.2 s of 16-bit PCM at 16 kHz.
MIN_AUDIO_BYTES = 16000 * 2 * 0.2


def pipecat_modules() -> SimpleNamespace:
    """pipecat's TTS service, frames and test utilities, or a skip."""
    return SimpleNamespace(
        tts=pytest.importorskip("pipecat.services.elevenlabs.tts"),
        xtts=pytest.importorskip("pipecat.services.xtts.tts"),
        aiohttp=pytest.importorskip("aiohttp"),
        frames=pytest.importorskip("pipecat.frames.frames"),
        utils=pytest.importorskip("pipecat.tests.utils"),
    )


def livekit_modules() -> SimpleNamespace:
    """livekit's ElevenLabs plugin and aiohttp, or a skip."""
    return SimpleNamespace(
        aiohttp=pytest.importorskip("aiohttp"),
        elevenlabs=pytest.importorskip("livekit.plugins.elevenlabs"),
    )


def assert_pipecat_speaks(pipecat: SimpleNamespace, url: str, key: str, text: str) -> None:
    """pipecat speaks ``text`` over ``url`` (``ws://host:port``): 16 kHz mono audio, one word
    frame per word from our alignment, and the context's final."""
    tts, frames, utils = pipecat.tts, pipecat.frames, pipecat.utils
    service = tts.ElevenLabsTTSService(
        api_key=key, url=url, sample_rate=16000,
        settings=tts.ElevenLabsTTSService.Settings(voice=CLIP_VOICE),
    )  # fmt: skip
    down, _ = asyncio.run(
        utils.run_test(
            service, frames_to_send=[frames.TTSSpeakFrame(text), utils.SleepFrame(sleep=3.0)]
        )
    )
    audio = [f for f in down if isinstance(f, frames.TTSAudioRawFrame)]
    assert audio and all(f.sample_rate == 16000 and f.num_channels == 1 for f in audio)
    assert sum(len(f.audio) for f in audio) > MIN_AUDIO_BYTES
    words = [f.text for f in down if isinstance(f, frames.TTSTextFrame)]
    assert " ".join(words).split() == text.split()
    assert any(isinstance(f, frames.TTSStoppedFrame) for f in down)


def assert_pipecat_xtts_speaks(pipecat: SimpleNamespace, base_url: str, text: str) -> None:
    """pipecat's ``XTTSService`` (coqui's xtts-streaming-server client) speaks ``text`` via
    ``base_url``: it loads ``/studio_speakers`` at start and streams ``/tts_stream``, and gives
    16 kHz mono audio, enough of it to be speech, with no error on the way."""
    down, up = asyncio.run(_pipecat_xtts(pipecat, base_url, text))
    frames = pipecat.frames
    errors = [f.error for f in [*down, *up] if isinstance(f, frames.ErrorFrame)]
    assert not errors
    audio = [f for f in down if isinstance(f, frames.TTSAudioRawFrame)]
    assert audio and all(f.sample_rate == 16000 and f.num_channels == 1 for f in audio)
    assert sum(len(f.audio) for f in audio) > MIN_AUDIO_BYTES
    assert any(isinstance(f, frames.TTSStoppedFrame) for f in down)


async def _pipecat_xtts(
    pipecat: SimpleNamespace, base_url: str, text: str
) -> tuple[list[object], list[object]]:
    xtts, frames, utils = pipecat.xtts, pipecat.frames, pipecat.utils
    async with pipecat.aiohttp.ClientSession() as session:
        with pytest.deprecated_call():  # pipecat 1.7 deprecated XTTSService (still shipped)
            service = xtts.XTTSService(
                base_url=base_url, aiohttp_session=session, sample_rate=16000,
                settings=xtts.XTTSService.Settings(voice=CLIP_VOICE),
            )  # fmt: skip
        # The test ends at the end frame after the sleep: room for /studio_speakers and the
        # speech on a loaded machine.
        return await utils.run_test(
            service, frames_to_send=[frames.TTSSpeakFrame(text), utils.SleepFrame(sleep=10.0)]
        )


def assert_livekit_speaks(livekit: SimpleNamespace, base_url: str, key: str, text: str) -> None:
    """livekit's ``stream()`` speaks ``text`` via ``base_url`` (``http://host:port/v1``):
    frames of 16 kHz audio, enough of it to be speech."""
    size, count, rates = asyncio.run(_livekit_stream(livekit, base_url, key, text))
    assert count > 0 and rates == {16000}
    assert size > MIN_AUDIO_BYTES


async def _livekit_stream(
    livekit: SimpleNamespace, base_url: str, key: str, text: str
) -> tuple[int, int, set[int]]:
    """Audio bytes, frames and sample rates livekit's stream() yields for ``text``."""
    async with livekit.aiohttp.ClientSession() as session:
        tts = livekit.elevenlabs.TTS(
            api_key=key, voice_id=CLIP_VOICE, base_url=base_url, encoding="pcm_16000",
            http_session=session,
        )  # fmt: skip
        size = count = 0
        rates: set[int] = set()
        async with tts.stream() as stream:
            stream.push_text(text)
            stream.end_input()
            async for event in stream:
                size += len(event.frame.data.tobytes())
                count += 1
                rates.add(event.frame.sample_rate)
        await tts.aclose()
    return size, count, rates
