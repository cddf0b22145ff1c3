"""Triangular mel filter banks, equal to ``torchaudio.functional.melscale_fbanks``.

Both XTTS mel spectrograms (GPT conditioning and speaker encoder) project STFT power onto mel bands
with torchaudio's filter bank; rebuilding the same matrix from the same float32 operations keeps our
mels equal to the reference ones. Kept apart from :mod:`xtts_core.audio.mel` so the scale maths can
be read and tested on its own.

What it does: HTK and Slaney mel scales, optional Slaney area normalisation. What it does not do:
linear or other filter banks.
"""

from __future__ import annotations

# The imports below follow the require_inference guard on purpose.
# ruff: noqa: E402
from xtts_core._extras import require_inference

require_inference("xtts_core.audio")

import math
import warnings

import torch
from torch import Tensor

__all__ = ["mel_filterbank"]

# Slaney's auditory-toolbox scale: linear below 1 kHz, logarithmic above.
_SLANEY_F_SP = 200.0 / 3
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP
_SLANEY_LOGSTEP = math.log(6.4) / 27.0


def _hz_to_mel(freq: float, mel_scale: str) -> float:
    """Convert one frequency in Hz to mels on the ``"htk"`` or ``"slaney"`` scale."""
    if mel_scale == "htk":
        return 2595.0 * math.log10(1.0 + freq / 700.0)
    if freq < _SLANEY_MIN_LOG_HZ:
        return freq / _SLANEY_F_SP
    return _SLANEY_MIN_LOG_MEL + math.log(freq / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP


def _mel_to_hz(mels: Tensor, mel_scale: str) -> Tensor:
    """Convert mels back to Hz on the ``"htk"`` or ``"slaney"`` scale (element-wise)."""
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    linear = _SLANEY_F_SP * mels
    log = _SLANEY_MIN_LOG_HZ * torch.exp(_SLANEY_LOGSTEP * (mels - _SLANEY_MIN_LOG_MEL))
    return torch.where(mels >= _SLANEY_MIN_LOG_MEL, log, linear)


def mel_filterbank(
    n_freqs: int,
    f_min: float,
    f_max: float,
    n_mels: int,
    sample_rate: int,
    norm: str | None = None,
    mel_scale: str = "htk",
) -> Tensor:
    """Build a triangular mel filter bank, equal to ``torchaudio.functional.melscale_fbanks``.

    Args:
        n_freqs: Number of STFT bins (``n_fft // 2 + 1``), spread over ``[0, sample_rate // 2]``.
        f_min: Lower edge of the first band in Hz.
        f_max: Upper edge of the last band in Hz.
        n_mels: Number of bands.
        sample_rate: Sample rate of the audio in Hz.
        norm: ``None`` for peak-1 triangles, or ``"slaney"`` to divide each triangle by its width
            in Hz (times 2), so every band has the same area.
        mel_scale: ``"htk"`` or ``"slaney"``.

    Returns:
        A float32 matrix of shape ``(n_freqs, n_mels)``; ``spec.mT @ fb`` maps bins to bands.

    Raises:
        ValueError: If ``norm`` or ``mel_scale`` is not one of the values above.
    """
    if norm not in (None, "slaney"):
        raise ValueError(f'norm must be None or "slaney", got {norm!r}')
    if mel_scale not in ("htk", "slaney"):
        raise ValueError(f'mel_scale must be "htk" or "slaney", got {mel_scale!r}')
    bins_hz = torch.linspace(0, sample_rate // 2, n_freqs)  # (n_freqs,)
    m_pts = torch.linspace(_hz_to_mel(f_min, mel_scale), _hz_to_mel(f_max, mel_scale), n_mels + 2)
    f_pts = _mel_to_hz(m_pts, mel_scale)  # (n_mels + 2,) band edges and centres in Hz
    f_diff = f_pts[1:] - f_pts[:-1]  # (n_mels + 1,)
    slopes = f_pts[None, :] - bins_hz[:, None]  # (n_freqs, n_mels + 2)
    rising = (-1.0 * slopes[:, :-2]) / f_diff[:-1]  # (n_freqs, n_mels)
    falling = slopes[:, 2:] / f_diff[1:]  # (n_freqs, n_mels)
    fb = torch.clamp(torch.minimum(rising, falling), min=0.0)  # (n_freqs, n_mels)
    if norm == "slaney":
        fb = fb * (2.0 / (f_pts[2 : n_mels + 2] - f_pts[:n_mels]))[None, :]
    if not fb.is_meta and (fb.amax(dim=0) == 0.0).any():  # meta: built for loading
        warnings.warn(
            f"a mel band has all-zero weights: n_mels ({n_mels}) is too high "
            f"or n_freqs ({n_freqs}) too low",
            stacklevel=2,
        )
    return fb
