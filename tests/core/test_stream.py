"""IncrementalVocoder: windowed vocoding equals one-shot vocoding; speed; overlap; bad params.

Runs a narrow HiFi-GAN (release geometry, so the release receptive field and sample mapping,
with 32 channels) directly, without a checkpoint; the engine-level stream tests are in
test_engine.py.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from narrow_vocoder import COND, WIDTH, narrow_decoder  # noqa: E402

from xtts_core.errors import ParameterError  # noqa: E402
from xtts_core.model.hifigan import HifiDecoder  # noqa: E402
from xtts_core.stream import IncrementalVocoder, apply_speed, speed_scale  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOL = 1e-5


@pytest.fixture(scope="module")
def decoder() -> HifiDecoder:
    torch.manual_seed(0)
    return narrow_decoder()


@pytest.fixture(scope="module")
def g() -> torch.Tensor:
    return torch.randn(1, COND, 1, generator=torch.Generator().manual_seed(1))


def latents(n: int, seed: int = 2) -> torch.Tensor:
    return torch.randn(n, WIDTH, generator=torch.Generator().manual_seed(seed))


def one_shot(
    decoder: HifiDecoder, g: torch.Tensor, lat: torch.Tensor, speed: float = 1.0
) -> torch.Tensor:
    with torch.inference_mode():
        stretched = apply_speed(lat, speed_scale(speed))
        return decoder(stretched[None], g)[0, 0]


def run(
    vocoder: IncrementalVocoder, lat: torch.Tensor, block: int = 1
) -> tuple[torch.Tensor, list[int]]:
    """Push ``block`` latents at a time, pulling after each push; returns audio and chunk sizes."""
    parts = []
    for i in range(0, lat.shape[0], block):
        vocoder.push(lat[i : i + block] if block > 1 else lat[i])
        parts.append(vocoder.pull())
    parts.append(vocoder.pull(final=True))
    return torch.cat(parts), [p.numel() for p in parts]


@pytest.mark.parametrize("speed", [1.0, 1.5, 0.8, 2.0])
@pytest.mark.parametrize("block", [1, 3])
def test_streamed_audio_equals_one_shot(
    decoder: HifiDecoder, g: torch.Tensor, speed: float, block: int
) -> None:
    lat = latents(14)
    audio, sizes = run(IncrementalVocoder(decoder, g, speed=speed), lat, block)
    expected = one_shot(decoder, g, lat, speed)
    assert audio.shape == expected.shape
    assert audio.dtype == torch.float32
    assert float((audio - expected).abs().max()) <= TOL
    assert sum(sizes[:-1]) > 0, "some audio must leave before the sentence ends"


def test_total_length_at_speed_one(decoder: HifiDecoder, g: torch.Tensor) -> None:
    for n in (1, 2, 3, 7, 20):
        audio, _ = run(IncrementalVocoder(decoder, g), latents(n))
        assert audio.numel() == 256 * math.floor(4 * n * 24000 / 22050), n


@pytest.mark.parametrize("overlap", [0, 256, 1024])
@pytest.mark.parametrize("speed", [1.0, 1.5])
def test_small_lookahead_with_overlap_keeps_the_length(
    decoder: HifiDecoder, g: torch.Tensor, overlap: int, speed: float
) -> None:
    lat = latents(12)
    vocoder = IncrementalVocoder(
        decoder, g, speed=speed, lookahead_frames=0, overlap_samples=overlap
    )
    audio, sizes = run(vocoder, lat)
    expected = one_shot(decoder, g, lat, speed)
    assert audio.shape == expected.shape
    assert torch.isfinite(audio).all()
    assert float(audio.abs().max()) <= 1.0
    assert sum(sizes[:-1]) > 0
    # the last chunk is computed with its full context: its tail equals the one-shot audio
    torch.testing.assert_close(audio[-256:], expected[-256:], rtol=0, atol=TOL)


def test_full_lookahead_is_exact_at_every_pull(decoder: HifiDecoder, g: torch.Tensor) -> None:
    """Every emitted sample is final: each prefix equals the one-shot audio's prefix."""
    lat = latents(10)
    expected = one_shot(decoder, g, lat)
    vocoder = IncrementalVocoder(decoder, g)
    emitted = torch.zeros(0)
    for i in range(lat.shape[0]):
        vocoder.push(lat[i])
        emitted = torch.cat([emitted, vocoder.pull()])
        torch.testing.assert_close(emitted, expected[: emitted.numel()], rtol=0, atol=TOL)
    assert emitted.numel() > 0
    emitted = torch.cat([emitted, vocoder.pull(final=True)])
    torch.testing.assert_close(emitted, expected, rtol=0, atol=TOL)


def test_pull_without_latents_is_empty(decoder: HifiDecoder, g: torch.Tensor) -> None:
    vocoder = IncrementalVocoder(decoder, g)
    assert vocoder.pull().numel() == 0
    assert vocoder.pull(final=True).numel() == 0
    assert vocoder.latent_count == 0


def test_final_pull_flushes_once(decoder: HifiDecoder, g: torch.Tensor) -> None:
    vocoder = IncrementalVocoder(decoder, g)
    vocoder.push(latents(5))
    assert vocoder.latent_count == 5
    first = vocoder.pull(final=True)
    assert first.numel() == 256 * math.floor(4 * 5 * 24000 / 22050)
    assert vocoder.pull(final=True).numel() == 0
    assert vocoder.pull().numel() == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"speed": 0.0}, "speed must be > 0"),
        ({"speed": -1.0}, "speed must be > 0"),
        ({"lookahead_frames": -1}, "must be >= 0"),
        ({"overlap_samples": -5}, "must be >= 0"),
    ],
)
def test_bad_parameters(decoder: HifiDecoder, g: torch.Tensor, kwargs: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        IncrementalVocoder(decoder, g, **kwargs)


def test_speed_scale() -> None:
    assert speed_scale(1.0) == 1.0
    assert speed_scale(2.0) == 0.5
    assert speed_scale(0.5) == 2.0
    assert speed_scale(0.01) == 20.0  # clamped at speed 0.05, as the reference
    for bad in (0.0, -0.5, math.nan):
        with pytest.raises(ParameterError):
            speed_scale(bad)


def test_apply_speed_is_the_reference_interpolation() -> None:
    lat = latents(9)
    assert apply_speed(lat, 1.0) is lat
    stretched = apply_speed(lat, 2.0)
    assert stretched.shape == (18, WIDTH)
    expected = F.interpolate(lat.T[None], scale_factor=2.0, mode="linear")[0].T
    torch.testing.assert_close(stretched, expected, rtol=0, atol=0)
    assert apply_speed(lat, 1 / 1.5).shape == (6, WIDTH)


@pytest.mark.parametrize("speed", [1.5, 2.0, 3.0])
def test_fast_speech_with_a_single_latent_so_far(
    decoder: HifiDecoder, g: torch.Tensor, speed: float
) -> None:
    """One latent stretched by 1/speed rounds to none: nothing is ready yet, and no torch error."""
    vocoder = IncrementalVocoder(decoder, g, speed=speed)
    vocoder.push(latents(1)[0])
    assert vocoder.pull().numel() == 0
    lat = latents(6)
    vocoder.push(lat[1:])
    audio = torch.cat([vocoder.pull(), vocoder.pull(final=True)])
    torch.testing.assert_close(
        audio, one_shot(decoder, g, torch.cat([latents(1), lat[1:]]), speed), rtol=0, atol=TOL
    )
