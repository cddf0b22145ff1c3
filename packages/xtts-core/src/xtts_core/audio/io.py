"""Reading reference audio, writing synthesised audio, and raw PCM for the servers.

The reference loads voices with ``torchaudio.load`` (which in coqui-tts 0.28 needs torchcodec and
FFmpeg); we read with soundfile instead and then do what coqui's ``load_audio`` does: mix to mono by
the channel mean, resample with :func:`~xtts_core.audio.resample.resample`, clip to [-1, 1]. Every
failure a user can cause (missing path, a file that is not audio, an empty file) is an
:class:`~xtts_core.errors.AudioError` whose message names the file.

What it does not do: decode formats libsndfile cannot read, trim silence or normalise loudness.
"""

from __future__ import annotations

# The imports below follow the require_inference guard on purpose.
# ruff: noqa: E402
from xtts_core._extras import require_inference

require_inference("xtts_core.audio")

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from xtts_core.audio.resample import resample
from xtts_core.errors import AudioError

__all__ = ["SAVE_FORMATS", "load_audio", "pcm16_bytes", "save_audio"]

#: File extensions :func:`save_audio` writes, with their soundfile format names.
SAVE_FORMATS: dict[str, str] = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


def load_audio(path: str | os.PathLike[str], target_sr: int) -> Tensor:
    """Read an audio file as a mono float32 waveform at ``target_sr`` Hz.

    Args:
        path: Any file soundfile (libsndfile) can read: WAV, FLAC, OGG/Vorbis, MP3 and more.
        target_sr: Wanted sample rate in Hz; the file is resampled when its rate differs.

    Returns:
        A float32 tensor of shape ``(1, T)`` with values in [-1, 1].

    Raises:
        AudioError: If the file is missing, not readable as audio, empty, or holds NaN/inf.
    """
    file = Path(path)
    if not file.exists():
        raise AudioError(f"audio file not found: {file}")
    if not file.is_file():
        raise AudioError(f"audio path is not a file: {file}")
    try:
        data, sample_rate = sf.read(file, dtype="float32", always_2d=True)  # (T, C)
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise AudioError(f"cannot read audio file {file}: {exc}") from exc
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(f"audio file {file} contains no samples")
    if not np.isfinite(data).all():
        raise AudioError(f"audio file {file} contains NaN or infinite samples")
    wav = torch.from_numpy(data.T.copy())  # (C, T)
    wav = wav.mean(dim=0, keepdim=True) if wav.shape[0] > 1 else wav  # (1, T)
    wav = resample(wav, int(sample_rate), target_sr)  # (1, T')
    return wav.clamp_(-1.0, 1.0)


def save_audio(path: str | os.PathLike[str], wav: Tensor, sample_rate: int) -> None:
    """Write a waveform to a WAV, FLAC or OGG (Vorbis) file chosen by the extension.

    Samples are clipped to [-1, 1] first; WAV and FLAC are written as 16-bit PCM.

    Args:
        path: Destination; its extension (case-insensitive) must be a key of :data:`SAVE_FORMATS`.
        wav: Waveform of shape ``(T,)`` (mono) or ``(C, T)``.
        sample_rate: Sample rate of ``wav`` in Hz.

    Raises:
        AudioError: If the extension is unsupported, ``wav`` has more than two dimensions, or the
            file cannot be written.
    """
    file = Path(path)
    fmt = SAVE_FORMATS.get(file.suffix.lower())
    if fmt is None:
        supported = ", ".join(SAVE_FORMATS)
        raise AudioError(
            f"cannot save {file}: unsupported extension {file.suffix!r} (use one of {supported})"
        )
    if wav.dim() not in (1, 2):
        shape = tuple(wav.shape)
        raise AudioError(f"cannot save {file}: expected shape (T,) or (C, T), got {shape}")
    data = wav.detach().to(device="cpu", dtype=torch.float32).clamp(-1.0, 1.0).numpy()
    try:
        sf.write(file, data.T, sample_rate, format=fmt)  # soundfile wants (T, C)
    except (sf.SoundFileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioError(f"cannot write audio file {file}: {exc}") from exc


def pcm16_bytes(wav: Tensor) -> bytes:
    """Encode a waveform as raw little-endian signed 16-bit PCM.

    Samples are clipped to [-1, 1], scaled by 32767 and truncated toward zero, as the
    xtts-streaming-server reference does (``(clip(wav) * 32767).to(int16)``).

    Args:
        wav: Waveform of any shape; it is flattened in row-major order (interleave channels
            yourself, as ``(T, C)``, for multi-channel PCM).

    Returns:
        ``2 * wav.numel()`` bytes.
    """
    scaled = wav.detach().to(device="cpu", dtype=torch.float32).clamp(-1.0, 1.0) * 32767.0
    return scaled.to(torch.int16).numpy().astype("<i2", copy=False).tobytes()
