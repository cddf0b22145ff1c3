"""Unit tests for xtts_core.audio.mel and xtts_core.audio.filterbank (no torchaudio needed)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from xtts_core.audio import (  # noqa: E402
    MelSpectrogram,
    Spectrogram,
    conditioning_log_mel,
    conditioning_mel_spectrogram,
    mel_filterbank,
    speaker_mel_spectrogram,
)
from xtts_core.audio.filterbank import _hz_to_mel, _mel_to_hz  # noqa: E402


def test_filterbank_shape_dtype_and_sign() -> None:
    fb = mel_filterbank(1025, 0.0, 8000.0, 80, 22050, norm="slaney")
    assert fb.shape == (1025, 80)
    assert fb.dtype == torch.float32
    assert (fb >= 0).all()
    assert (fb.amax(dim=0) > 0).all()
    assert (fb[round(8000 / (22050 / 2) * 1024) + 1 :] == 0).all()  # nothing above f_max


def test_unnormalised_triangles_peak_at_most_one() -> None:
    fb = mel_filterbank(257, 0.0, 8000.0, 64, 16000)
    assert fb.max() <= 1.0
    assert fb.amax(dim=0).min() > 0.5


@pytest.mark.parametrize("mel_scale", ["htk", "slaney"])
def test_slaney_norm_gives_unit_area_bands(mel_scale: str) -> None:
    n_freqs, sample_rate = 8193, 22050  # fine bins so the Riemann sum is close to the integral
    fb = mel_filterbank(n_freqs, 0.0, 8000.0, 80, sample_rate, "slaney", mel_scale)
    bin_hz = (sample_rate // 2) / (n_freqs - 1)
    area = fb.sum(dim=0) * bin_hz
    assert (area - 1.0).abs().max() < 1e-2


def test_mel_scales_at_known_points() -> None:
    assert _hz_to_mel(0.0, "htk") == 0.0
    assert _hz_to_mel(1000.0, "htk") == pytest.approx(1000.0, abs=0.1)
    assert _hz_to_mel(1000.0, "slaney") == pytest.approx(15.0)
    mels = torch.tensor([0.0, 10.0, 15.0, 40.0], dtype=torch.float64)
    for scale in ("htk", "slaney"):
        back = [_hz_to_mel(float(f), scale) for f in _mel_to_hz(mels.clone(), scale)]
        assert back == pytest.approx(mels.tolist(), abs=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"norm": "area"}, "norm"), ({"mel_scale": "x"}, "mel_scale")]
)
def test_filterbank_rejects_unknown_options(kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        mel_filterbank(201, 0.0, 8000.0, 40, 16000, **kwargs)  # type: ignore[arg-type]


def test_state_dict_keys_mirror_torchaudio() -> None:
    mel = speaker_mel_spectrogram()
    sd = mel.state_dict()
    assert list(sd) == ["spectrogram.window", "mel_scale.fb"]
    assert sd["spectrogram.window"].shape == (400,)
    assert sd["mel_scale.fb"].shape == (257, 64)
    assert torch.equal(sd["spectrogram.window"], torch.hamming_window(400))


def test_loads_speaker_encoder_keys_strictly() -> None:
    torch_spec = torch.nn.Sequential(torch.nn.Identity(), speaker_mel_spectrogram())
    donor = torch.nn.Sequential(torch.nn.Identity(), speaker_mel_spectrogram())
    sd = {f"torch_spec.{k}": v for k, v in donor.state_dict().items()}
    assert set(sd) == {"torch_spec.1.spectrogram.window", "torch_spec.1.mel_scale.fb"}
    holder = torch.nn.Module()
    holder.torch_spec = torch_spec
    holder.load_state_dict(sd, strict=True)


@pytest.mark.parametrize(
    ("factory", "n_mels", "hop", "sr"),
    [
        (conditioning_mel_spectrogram, 80, 256, 22050),
        (speaker_mel_spectrogram, 64, 160, 16000),
    ],
)
def test_xtts_mel_shapes(factory: object, n_mels: int, hop: int, sr: int) -> None:
    mel = factory()  # type: ignore[operator]
    assert isinstance(mel, MelSpectrogram)
    out = mel(torch.randn(2, sr))
    assert out.shape == (2, n_mels, sr // hop + 1)
    assert (out >= 0).all()


def test_power_one_is_sqrt_of_power_two() -> None:
    wav = torch.randn(1, 4000, dtype=torch.float64)
    p2 = Spectrogram(n_fft=256, power=2.0).double()(wav)
    p1 = Spectrogram(n_fft=256, power=1.0).double()(wav)
    spec = Spectrogram(n_fft=256, power=None).double()(wav)
    assert spec.is_complex()
    assert p2.shape == (1, 129, 4000 // 128 + 1)
    assert torch.allclose(p1**2, p2)
    assert torch.allclose(spec.abs() ** 2, p2)


def test_window_normalisation_divides_by_window_norm() -> None:
    wav = torch.randn(1, 4000, dtype=torch.float64)
    plain = Spectrogram(n_fft=256, power=1.0).double()
    scaled = Spectrogram(n_fft=256, power=1.0, normalized=True).double()
    assert torch.allclose(scaled(wav) * plain.window.pow(2).sum().sqrt(), plain(wav))


def test_too_many_bands_warns() -> None:
    with pytest.warns(UserWarning, match="all-zero"):
        mel_filterbank(129, 0.0, 8000.0, 128, 16000)


def test_conditioning_log_mel_matches_its_definition() -> None:
    wav = torch.randn(1, 22050) * 0.1
    stats = torch.rand(80) + 0.5
    want = torch.log(conditioning_mel_spectrogram()(wav).clamp(min=1e-5)) / stats[None, :, None]
    got = conditioning_log_mel(wav, stats)
    assert got.shape == (1, 80, 22050 // 256 + 1)
    assert torch.equal(got, want)


def test_conditioning_log_mel_checks_stats_shape() -> None:
    with pytest.raises(ValueError, match="mel_stats"):
        conditioning_log_mel(torch.randn(1, 22050), torch.ones(64))
