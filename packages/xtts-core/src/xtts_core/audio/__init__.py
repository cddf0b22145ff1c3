"""Audio I/O and signal processing for XTTS, without torchaudio.

XTTS-v2 needs exactly three things from an audio library: reading reference clips, band-limited
resampling and two mel spectrograms. This subpackage provides them on plain PyTorch and soundfile,
numerically equal to the torchaudio calls coqui-tts makes, so the runtime does not depend on
torchaudio (whose ``load`` needs torchcodec and FFmpeg in recent releases).

Importing it needs the ``inference`` extra (torch, numpy, soundfile).
"""

from __future__ import annotations

from xtts_core.audio.filterbank import mel_filterbank
from xtts_core.audio.io import SAVE_FORMATS, load_audio, pcm16_bytes, save_audio
from xtts_core.audio.mel import (
    MelScale,
    MelSpectrogram,
    Spectrogram,
    conditioning_log_mel,
    conditioning_mel_spectrogram,
    speaker_mel_spectrogram,
)
from xtts_core.audio.resample import StreamingResampler, resample

__all__ = [
    "SAVE_FORMATS",
    "MelScale",
    "MelSpectrogram",
    "Spectrogram",
    "StreamingResampler",
    "conditioning_log_mel",
    "conditioning_mel_spectrogram",
    "load_audio",
    "mel_filterbank",
    "pcm16_bytes",
    "resample",
    "save_audio",
    "speaker_mel_spectrogram",
]
