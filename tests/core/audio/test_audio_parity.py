"""Parity of xtts_core.audio with torchaudio (and coqui-tts where installed).

Runs where torchaudio imports (the ``parity`` Hatch env, or any venv with the reference install);
skipped elsewhere. Tolerances are those the runtime relies on: resample max abs error <= 1e-6,
mel spectrograms max relative error <= 1e-5. On CPU both sides currently agree bit for bit.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torchaudio = pytest.importorskip("torchaudio")

from xtts_core.audio import (  # noqa: E402
    MelSpectrogram,
    conditioning_log_mel,
    conditioning_mel_spectrogram,
    load_audio,
    mel_filterbank,
    resample,
    speaker_mel_spectrogram,
)

pytestmark = pytest.mark.parity

RATE_PAIRS = [
    (22050, 16000),
    (44100, 22050),
    (16000, 22050),
    (48000, 24000),
    (24000, 16000),
    (44100, 16000),
    (8000, 22050),
    (22050, 24000),
]

# The two torchaudio.transforms.MelSpectrogram configurations XTTS builds.
CONDITIONING_KWARGS = {  # TTS/tts/models/xtts.py, wav_to_mel_cloning(..., n_fft=2048, ...)
    "sample_rate": 22050,
    "n_fft": 2048,
    "hop_length": 256,
    "win_length": 1024,
    "power": 2,
    "normalized": False,
    "f_min": 0,
    "f_max": 8000,
    "n_mels": 80,
    "norm": "slaney",
}
SPEAKER_KWARGS = {  # TTS/encoder/models/base_encoder.py, torch_spec[1]
    "sample_rate": 16000,
    "n_fft": 512,
    "win_length": 400,
    "hop_length": 160,
    "window_fn": torch.hamming_window,
    "n_mels": 64,
}


def _inputs(rate: int, seconds: float, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    n = int(rate * seconds) + 37  # not a multiple of any hop or rate ratio
    noise = torch.rand(3, n, generator=gen) * 2 - 1
    t = torch.arange(n) / rate
    sines = torch.stack([0.8 * torch.sin(2 * math.pi * hz * t) for hz in (110.0, 440.0, 3000.0)])
    return [noise, sines]


def _max_rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float(((ours - ref).abs() / ref.abs().clamp_min(1e-12)).max())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("orig", "new"), RATE_PAIRS)
def test_resample_matches_torchaudio(orig: int, new: int, dtype: torch.dtype) -> None:
    for wav in _inputs(orig, 1.5, seed=orig + new):
        wav = wav.to(dtype)
        ref = torchaudio.functional.resample(wav, orig, new)
        ours = resample(wav, orig, new)
        assert ours.shape == ref.shape
        assert ours.dtype == ref.dtype
        assert float((ours - ref).abs().max()) <= 1e-6


@pytest.mark.parametrize(
    "args",
    [
        (1025, 0.0, 8000.0, 80, 22050, "slaney", "htk"),  # XTTS conditioning
        (257, 0.0, 8000.0, 64, 16000, None, "htk"),  # XTTS speaker encoder
        (1025, 0.0, 8000.0, 80, 22050, "slaney", "slaney"),
        (1025, 0.0, 8000.0, 80, 22050, None, "slaney"),
        (201, 20.0, 7600.0, 40, 16000, None, "htk"),
        (513, 50.0, 11025.0, 128, 22050, "slaney", "htk"),
    ],
)
def test_filterbank_matches_torchaudio(args: tuple[object, ...]) -> None:
    ours = mel_filterbank(*args)  # type: ignore[arg-type]
    ref = torchaudio.functional.melscale_fbanks(*args)
    assert ours.shape == ref.shape
    assert float((ours - ref).abs().max()) <= 1e-6 * float(ref.abs().max())


@pytest.mark.parametrize(
    ("ours_factory", "ref_kwargs"),
    [
        (conditioning_mel_spectrogram, CONDITIONING_KWARGS),
        (speaker_mel_spectrogram, SPEAKER_KWARGS),
    ],
    ids=["conditioning", "speaker"],
)
def test_mel_spectrogram_matches_torchaudio(ours_factory: object, ref_kwargs: dict) -> None:
    ref_module = torchaudio.transforms.MelSpectrogram(**ref_kwargs)
    ours_module = ours_factory()  # type: ignore[operator]
    assert isinstance(ours_module, MelSpectrogram)
    # Same buffer names and values: a checkpoint saved from torchaudio loads strictly.
    ref_state = ref_module.state_dict()
    assert list(ours_module.state_dict()) == list(ref_state)
    for key, value in ours_module.state_dict().items():
        assert torch.equal(value, ref_state[key]), key
    ours_module.load_state_dict(ref_state, strict=True)
    rate = int(ref_kwargs["sample_rate"])
    for wav in _inputs(rate, 2.0, seed=rate):
        ref = ref_module(wav)
        ours = ours_module(wav)
        assert ours.shape == ref.shape
        assert _max_rel_err(ours, ref) <= 1e-5


def test_conditioning_log_mel_matches_coqui() -> None:
    xtts = pytest.importorskip("TTS.tts.models.xtts")
    gen = torch.Generator().manual_seed(7)
    wav = torch.randn(1, 22050 * 3 + 11, generator=gen) * 0.2
    stats = torch.rand(80, generator=gen) + 0.5
    kwargs = {k: v for k, v in CONDITIONING_KWARGS.items() if k != "norm"}  # hard-coded there
    ref = xtts.wav_to_mel_cloning(wav, mel_norms=stats, **kwargs)
    ours = conditioning_log_mel(wav, stats)
    assert ours.shape == ref.shape
    assert _max_rel_err(ours, ref) <= 1e-5


def test_load_audio_matches_soundfile_plus_torchaudio(tmp_path: Path) -> None:
    sf = pytest.importorskip("soundfile")
    noise, sines = _inputs(44100, 1.0, seed=3)
    stereo = torch.stack([sines[1], noise[0] * 0.5], dim=1)  # (T, 2)
    path = tmp_path / "ref.flac"
    sf.write(path, stereo.numpy(), 44100)
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = torch.from_numpy(data.T.copy()).mean(dim=0, keepdim=True)  # coqui's load_audio steps
    ref = torchaudio.functional.resample(mono, rate, 22050).clip(-1, 1)
    ours = load_audio(path, 22050)
    assert ours.shape == ref.shape
    assert float((ours - ref).abs().max()) <= 1e-6
