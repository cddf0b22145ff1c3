"""Mel spectrograms, numerically equal to torchaudio's, with torchaudio's module layout.

XTTS computes two mel spectrograms with ``torchaudio.transforms.MelSpectrogram``: the GPT
conditioning mel (22050 Hz, 80 slaney-normalised bands) and the speaker encoder's mel (16000 Hz,
64 bands, Hamming window). The speaker encoder's checkpoint stores that module's buffers
(``torch_spec.1.spectrogram.window`` and ``torch_spec.1.mel_scale.fb``), so :class:`MelSpectrogram`
keeps torchaudio's submodule and buffer names and loads those keys with ``strict=True``.

What it does: ``torch.stft`` power spectra, the mel projection (filter banks live in
:mod:`xtts_core.audio.filterbank`) and XTTS's log-mel normalisation. What it does not do: the
inverse transforms, MFCCs, or any option XTTS never sets (``pad``, ``onesided``, ``wkwargs``).
"""

from __future__ import annotations

# The imports below follow the require_inference guard on purpose.
# ruff: noqa: E402
from xtts_core._extras import require_inference

require_inference("xtts_core.audio")

import functools
from collections.abc import Callable

import torch
from torch import Tensor, nn

from xtts_core.audio.filterbank import mel_filterbank

__all__ = [
    "MelScale",
    "MelSpectrogram",
    "Spectrogram",
    "conditioning_log_mel",
    "conditioning_mel_spectrogram",
    "mel_filterbank",
    "speaker_mel_spectrogram",
]

WindowFn = Callable[[int], Tensor]


class Spectrogram(nn.Module):
    """STFT magnitude (``power=1``), power (``power=2``) or complex (``power=None``) spectrogram.

    Mirrors ``torchaudio.transforms.Spectrogram``: the window is the persistent buffer ``window``.
    """

    window: Tensor

    def __init__(
        self,
        n_fft: int = 400,
        win_length: int | None = None,
        hop_length: int | None = None,
        window_fn: WindowFn = torch.hann_window,
        power: float | None = 2.0,
        normalized: bool | str = False,
        center: bool = True,
        pad_mode: str = "reflect",
    ) -> None:
        """Create the transform.

        Args:
            n_fft: FFT size; the output has ``n_fft // 2 + 1`` bins.
            win_length: Window length (default ``n_fft``); zero-padded to ``n_fft`` by the STFT.
            hop_length: Hop between frames (default ``win_length // 2``).
            window_fn: Builds the window from its length, e.g. ``torch.hann_window``.
            power: Exponent of the magnitude, or ``None`` for the complex STFT.
            normalized: ``True``/``"window"`` divides by the window's L2 norm;
                ``"frame_length"`` uses ``torch.stft(normalized=True)``.
            center: Pad ``n_fft // 2`` samples on both sides so frame ``t`` is centred at
                ``t * hop_length``.
            pad_mode: Padding mode used when ``center`` is true.
        """
        super().__init__()
        if normalized not in (False, True, "window", "frame_length"):
            msg = f'normalized must be a bool, "window" or "frame_length", not {normalized!r}'
            raise ValueError(msg)
        self.n_fft = n_fft
        self.win_length = win_length if win_length is not None else n_fft
        self.hop_length = hop_length if hop_length is not None else self.win_length // 2
        self.power = power
        self.normalized = normalized
        self.center = center
        self.pad_mode = pad_mode
        self.register_buffer("window", window_fn(self.win_length))

    def forward(self, wav: Tensor) -> Tensor:
        """Return the spectrogram of ``wav`` (..., T) with shape (..., n_fft // 2 + 1, frames)."""
        shape = wav.shape
        spec = torch.stft(
            wav.reshape(-1, shape[-1]),  # (N, T)
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=self.center,
            pad_mode=self.pad_mode,
            normalized=self.normalized == "frame_length",
            onesided=True,
            return_complex=True,
        )  # (N, n_freqs, frames)
        spec = spec.reshape(*shape[:-1], *spec.shape[-2:])  # (..., n_freqs, frames)
        if self.normalized in (True, "window"):
            spec = spec / self.window.pow(2.0).sum().sqrt()
        if self.power is None:
            return spec
        if self.power == 1.0:
            return spec.abs()
        return spec.abs().pow(self.power)


class MelScale(nn.Module):
    """Map a linear-frequency spectrogram to mel bands; the filter bank is the buffer ``fb``."""

    fb: Tensor

    def __init__(
        self,
        n_mels: int = 128,
        sample_rate: int = 16000,
        f_min: float = 0.0,
        f_max: float | None = None,
        n_stft: int = 201,
        norm: str | None = None,
        mel_scale: str = "htk",
    ) -> None:
        """Create the transform.

        Arguments are those of :func:`mel_filterbank`; ``n_stft`` is the number of STFT bins and
        ``f_max`` defaults to ``sample_rate // 2``.
        """
        super().__init__()
        self.n_mels = n_mels
        self.sample_rate = sample_rate
        self.f_min = f_min
        self.f_max = f_max if f_max is not None else float(sample_rate // 2)
        if f_min > self.f_max:
            raise ValueError(f"f_min ({f_min}) must not exceed f_max ({self.f_max})")
        fb = mel_filterbank(n_stft, f_min, self.f_max, n_mels, sample_rate, norm, mel_scale)
        self.register_buffer("fb", fb)  # (n_stft, n_mels)

    def forward(self, spec: Tensor) -> Tensor:
        """Return ``spec`` (..., n_stft, frames) as mel bands (..., n_mels, frames)."""
        return torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2)


class MelSpectrogram(nn.Module):
    """:class:`Spectrogram` then :class:`MelScale`, like ``torchaudio.transforms.MelSpectrogram``.

    Submodules are named ``spectrogram`` and ``mel_scale`` so the state_dict keys are
    ``spectrogram.window`` and ``mel_scale.fb``, exactly as torchaudio's.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 400,
        win_length: int | None = None,
        hop_length: int | None = None,
        f_min: float = 0.0,
        f_max: float | None = None,
        n_mels: int = 128,
        window_fn: WindowFn = torch.hann_window,
        power: float = 2.0,
        normalized: bool | str = False,
        center: bool = True,
        pad_mode: str = "reflect",
        norm: str | None = None,
        mel_scale: str = "htk",
    ) -> None:
        """Create the transform.

        Defaults are torchaudio's; see :class:`Spectrogram`, :class:`MelScale` and
        :func:`mel_filterbank` for the arguments.
        """
        super().__init__()
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.spectrogram = Spectrogram(
            n_fft, win_length, hop_length, window_fn, power, normalized, center, pad_mode
        )
        n_stft = n_fft // 2 + 1
        self.mel_scale = MelScale(n_mels, sample_rate, f_min, f_max, n_stft, norm, mel_scale)

    def forward(self, wav: Tensor) -> Tensor:
        """Return the mel spectrogram of ``wav`` (..., T) with shape (..., n_mels, frames)."""
        spec: Tensor = self.spectrogram(wav)  # (..., n_fft // 2 + 1, frames)
        mel: Tensor = self.mel_scale(spec)  # (..., n_mels, frames)
        return mel


def conditioning_mel_spectrogram() -> MelSpectrogram:
    """Build the GPT conditioning mel of XTTS (``wav_to_mel_cloning`` with the chunk settings)."""
    return MelSpectrogram(
        sample_rate=22050,
        n_fft=2048,
        win_length=1024,
        hop_length=256,
        f_min=0.0,
        f_max=8000.0,
        n_mels=80,
        power=2.0,
        normalized=False,
        norm="slaney",
    )


def speaker_mel_spectrogram() -> MelSpectrogram:
    """Build the speaker encoder's mel (``torch_spec[1]`` of coqui's ResNet speaker encoder)."""
    return MelSpectrogram(
        sample_rate=16000,
        n_fft=512,
        win_length=400,
        hop_length=160,
        window_fn=torch.hamming_window,
        n_mels=64,
    )


@functools.lru_cache(maxsize=8)
def _cached_conditioning_mel(device: torch.device, dtype: torch.dtype) -> MelSpectrogram:
    """Return one conditioning :class:`MelSpectrogram` per device and dtype."""
    # Normal (not inference) buffers even when first built under inference_mode.
    with torch.inference_mode(False):
        return conditioning_mel_spectrogram().to(device=device, dtype=dtype)


def conditioning_log_mel(wav: Tensor, mel_stats: Tensor) -> Tensor:
    """Compute XTTS's normalised log mel of a 22050 Hz clip, as ``wav_to_mel_cloning`` does.

    Args:
        wav: Waveform at 22050 Hz of shape ``(..., T)``, usually ``(1, T)``.
        mel_stats: Per-band divisors of shape ``(80,)`` (the checkpoint's ``mel_stats``).

    Returns:
        ``log(clamp(mel, 1e-5)) / mel_stats`` of shape ``(..., 80, frames)``, on ``wav``'s device
        and dtype, with ``frames = T // 256 + 1``.

    Raises:
        ValueError: If ``mel_stats`` does not hold 80 values.
    """
    if mel_stats.shape != (80,):
        raise ValueError(f"mel_stats must have shape (80,), got {tuple(mel_stats.shape)}")
    mel = _cached_conditioning_mel(wav.device, wav.dtype)(wav)  # (..., 80, frames)
    log_mel = torch.log(torch.clamp(mel, min=1e-5))
    return log_mel / mel_stats.to(log_mel)[:, None]  # (80, 1) broadcast over frames
