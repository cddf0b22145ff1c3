"""Unit tests for xtts_core.audio.io with real files written by soundfile."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
sf = pytest.importorskip("soundfile")

import xtts_core.audio  # noqa: E402
from xtts_core.audio import load_audio, pcm16_bytes, resample, save_audio  # noqa: E402
from xtts_core.errors import AudioError  # noqa: E402


def _sine(sr: int, seconds: float, hz: float = 220.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_all_names_exist() -> None:
    assert sorted(xtts_core.audio.__all__) == sorted(set(xtts_core.audio.__all__))
    for name in xtts_core.audio.__all__:
        assert hasattr(xtts_core.audio, name), name


def test_stereo_flac_44k_loads_as_mono_22k(tmp_path: Path) -> None:
    left = _sine(44100, 0.5)
    stereo = np.stack([left, -0.5 * left], axis=1)  # (T, 2)
    path = tmp_path / "voice.flac"
    sf.write(path, stereo, 44100)
    wav = load_audio(path, 22050)
    assert wav.dtype == torch.float32
    assert wav.shape == (1, math.ceil(stereo.shape[0] * 22050 / 44100))
    stored, _ = sf.read(path, dtype="float32", always_2d=True)
    want = resample(torch.from_numpy(stored.T.copy()).mean(dim=0, keepdim=True), 44100, 22050)
    assert torch.equal(wav, want.clamp(-1, 1))
    assert wav.abs().max() == pytest.approx(0.125, abs=0.005)  # mean of 0.5 and -0.25 amplitudes


def test_same_rate_is_read_unchanged_and_clipped(tmp_path: Path) -> None:
    data = np.array([0.0, 0.25, -0.5, 1.5, -3.0], dtype=np.float32)
    path = tmp_path / "loud.wav"
    sf.write(path, data, 22050, subtype="FLOAT")
    wav = load_audio(str(path), 22050)
    assert wav.tolist() == [[0.0, 0.25, -0.5, 1.0, -1.0]]


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".WAV"])
def test_save_then_load_round_trip(tmp_path: Path, suffix: str) -> None:
    data = torch.from_numpy(_sine(24000, 0.25))
    path = tmp_path / f"out{suffix}"
    save_audio(path, data, 24000)
    back = load_audio(path, 24000)
    assert back.shape == (1, data.shape[0])
    tol = 0.05 if suffix == ".ogg" else 1 / 32767 + 1e-6  # Vorbis is lossy
    assert (back[0] - data).abs().max() <= tol


def test_save_saturates_out_of_range_samples(tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    save_audio(path, torch.tensor([[2.0, -2.0, 0.5]]), 16000)
    data, sr = sf.read(path, dtype="int16")
    assert sr == 16000
    assert data.tolist()[:2] == [32767, -32768]  # full scale, no wrap-around


def test_missing_file_error_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "missing.wav"
    with pytest.raises(AudioError, match="not found") as info:
        load_audio(path, 22050)
    assert str(path) in str(info.value)


def test_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="not a file"):
        load_audio(tmp_path, 22050)


@pytest.mark.parametrize("content", [b"hello, this is not audio\n" * 20, b""])
def test_non_audio_file_error_names_the_path(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match="cannot read") as info:
        load_audio(path, 22050)
    assert str(path) in str(info.value)


def test_empty_audio_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros((0, 1), dtype=np.float32), 22050)
    with pytest.raises(AudioError, match="no samples") as info:
        load_audio(path, 22050)
    assert str(path) in str(info.value)


def test_non_finite_samples_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "nan.wav"
    sf.write(path, np.array([0.0, np.nan, 0.1], dtype=np.float32), 22050, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(path, 22050)


def test_save_rejects_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "out.mp3"
    with pytest.raises(AudioError, match=r"unsupported extension '\.mp3'") as info:
        save_audio(path, torch.zeros(10), 22050)
    assert str(path) in str(info.value)
    assert not path.exists()


def test_save_rejects_bad_shape(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="shape"):
        save_audio(tmp_path / "x.wav", torch.zeros(1, 1, 10), 22050)


def test_save_into_missing_directory_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir.wav"
    with pytest.raises(AudioError, match="cannot write") as info:
        save_audio(path, torch.zeros(10), 22050)
    assert str(path) in str(info.value)


def test_pcm16_clips_scales_and_truncates() -> None:
    wav = torch.tensor([-2.0, -1.0, 0.0, 0.5, -0.5, 1.0, 3.0])
    raw = pcm16_bytes(wav)
    assert len(raw) == 2 * wav.numel()
    want = [-32767, -32767, 0, 16383, -16383, 32767, 32767]
    assert np.frombuffer(raw, dtype="<i2").tolist() == want
    assert raw[-2:] == b"\xff\x7f"  # little-endian 32767


def test_pcm16_accepts_other_dtypes_and_shapes() -> None:
    wav = torch.full((1, 4), 0.25, dtype=torch.float64)
    assert pcm16_bytes(wav) == pcm16_bytes(torch.full((4,), 0.25))
    assert pcm16_bytes(torch.zeros(0)) == b""
