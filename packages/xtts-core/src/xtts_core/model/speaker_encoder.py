"""The XTTS-v2 speaker encoder: a 16 kHz waveform -> an L2-normalised 512-d speaker embedding.

What it does: :class:`ResNetSpeakerEncoder` is coqui's ``ResNetSpeakerEncoder`` (H/ASP:
pre-emphasis, Hamming-window log-mel, instance norm, four SE-ResNet stages, attentive statistics
pooling and a linear projection) with the arguments XTTS builds it with and the same parameter and
buffer names, so the ``hifigan_decoder.speaker_encoder.*`` slice of a checkpoint loads with
``strict=True``.

What it does not do: resampling, reading files or averaging several references. Coqui's
``Xtts.get_speaker_embedding(audio, sr)`` resamples the 22050 Hz reference to 16000 Hz
(``torchaudio.functional.resample``; ours is :func:`xtts_core.audio.resample`) *before* this
encoder, calls ``forward(x, l2_norm=True)`` and appends a trailing axis
(:meth:`ResNetSpeakerEncoder.speaker_embedding` does the last two). With several reference files
``get_conditioning_latents`` averages the per-file embeddings without re-normalising; that is the
caller's job. Only the waveform input path (coqui's ``use_torch_spec=True``) exists; call
``.eval()`` before use (BatchNorm uses its running statistics only in eval mode).
"""

from __future__ import annotations

# The imports below follow the require_inference guard on purpose.
# ruff: noqa: E402
from xtts_core._extras import require_inference

require_inference("xtts_core.model")

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xtts_core.audio.mel import MelSpectrogram

__all__ = ["PreEmphasis", "ResNetSpeakerEncoder", "SEBasicBlock", "SELayer"]


class PreEmphasis(nn.Module):
    """Pre-emphasis ``y[t] = x[t] - c * x[t - 1]`` (``x[-1] := x[1]``); the kernel is ``filter``."""

    filter: Tensor

    def __init__(self, coefficient: float = 0.97) -> None:
        super().__init__()
        self.coefficient = coefficient
        self.register_buffer("filter", torch.tensor([[[-coefficient, 1.0]]]))  # (1, 1, 2)

    def forward(self, x: Tensor) -> Tensor:
        """Filter ``x`` (B, T) -> (B, T)."""
        x = F.pad(x.unsqueeze(1), (1, 0), mode="reflect")  # (B, T) -> (B, 1, T + 1)
        return F.conv1d(x, self.filter).squeeze(1)  # (B, 1, T) -> (B, T)


class SELayer(nn.Module):
    """Squeeze-and-excitation: scale each channel by a gate computed from its mean."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.ReLU(),
            nn.Linear(channels // reduction, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        B, C = x.shape[:2]
        y = x.mean(dim=(2, 3))  # (B, C, H, W) -> (B, C)
        gate: Tensor = self.fc(y)
        return x * gate.view(B, C, 1, 1)  # (B, C) -> (B, C, 1, 1)


class SEBasicBlock(nn.Module):
    """conv -> ReLU -> BN -> conv -> BN -> SE, plus the (downsampled) input, then ReLU."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, reduction: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SELayer(planes, reduction)
        self.downsample = (
            nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
            if stride != 1 or inplanes != planes
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.bn1(F.relu(self.conv1(x)))
        h = self.se(self.bn2(self.conv2(h)))
        res = x if self.downsample is None else self.downsample(x)
        return F.relu(h + res)


class ResNetSpeakerEncoder(nn.Module):
    """Coqui's H/ASP ResNet speaker encoder as XTTS builds it (``use_torch_spec=True``).

    Parameter names: ``torch_spec.0.filter``, ``torch_spec.1.spectrogram.window``,
    ``torch_spec.1.mel_scale.fb``, ``conv1``, ``bn1``, ``layer{1..4}.j.{conv1, bn1, conv2, bn2,
    se.fc.0, se.fc.2, downsample.0, downsample.1}``, ``attention.{0, 2, 3}``, ``fc``.
    """

    def __init__(
        self,
        input_dim: int = 64,
        proj_dim: int = 512,
        layers: Sequence[int] = (3, 4, 6, 3),
        num_filters: Sequence[int] = (32, 64, 128, 256),
        encoder_type: str = "ASP",
        log_input: bool = True,
        sample_rate: int = 16000,
        fft_size: int = 512,
        win_length: int = 400,
        hop_length: int = 160,
        preemphasis: float = 0.97,
    ) -> None:
        """Create the encoder; defaults are XTTS's (coqui's ``audio_config`` names for the mel).

        Args:
            input_dim: Mel bands (64); also the height of the 2-D feature map.
            proj_dim: Embedding width (512).
            layers: SE blocks per stage.
            num_filters: Channels per stage; stages 2-4 halve both axes.
            encoder_type: ``"ASP"`` (mean and std pooling) or ``"SAP"`` (mean only).
            log_input: Take ``log(mel + 1e-6)`` before instance norm.
            sample_rate, fft_size, win_length, hop_length: The mel's STFT (16000, 512, 400, 160).
            preemphasis: Pre-emphasis coefficient (0.97).
        """
        super().__init__()
        if encoder_type not in ("ASP", "SAP"):
            raise ValueError(f"encoder_type must be 'ASP' or 'SAP', not {encoder_type!r}")
        if len(layers) != 4 or len(num_filters) != 4:
            raise ValueError("layers and num_filters need four stages")
        self.encoder_type = encoder_type
        self.input_dim = input_dim
        self.proj_dim = proj_dim
        self.log_input = log_input
        self.sample_rate = sample_rate

        self.conv1 = nn.Conv2d(1, num_filters[0], 3, stride=1, padding=1)
        self.bn1 = nn.BatchNorm2d(num_filters[0])
        planes_in = num_filters[0]
        stages = []
        for i, (blocks, planes) in enumerate(zip(layers, num_filters, strict=True)):
            stride = 1 if i == 0 else 2
            stage = [SEBasicBlock(planes_in, planes, stride)]
            stage += [SEBasicBlock(planes, planes) for _ in range(1, blocks)]
            stages.append(nn.Sequential(*stage))
            planes_in = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.instancenorm = nn.InstanceNorm1d(input_dim)
        self.torch_spec = nn.Sequential(
            PreEmphasis(preemphasis),
            MelSpectrogram(
                sample_rate=sample_rate,
                n_fft=fft_size,
                win_length=win_length,
                hop_length=hop_length,
                window_fn=torch.hamming_window,
                n_mels=input_dim,
            ),
        )
        pooled = num_filters[3] * (input_dim // 8)  # channels x mel height after three stride-2s
        self.attention = nn.Sequential(
            nn.Conv1d(pooled, 128, kernel_size=1),
            nn.ReLU(),
            nn.BatchNorm1d(128),
            nn.Conv1d(128, pooled, kernel_size=1),
            nn.Softmax(dim=2),
        )
        self.fc = nn.Linear(pooled * 2 if encoder_type == "ASP" else pooled, proj_dim)
        #: Shortest input (16 kHz samples) the mel accepts: its STFT reflect-pads n_fft / 2.
        self.min_samples = fft_size // 2 + 1

    def forward(self, wav: Tensor, l2_norm: bool = True) -> Tensor:
        """Embed ``wav`` (B, T) or (B, 1, T) at ``sample_rate`` (16 kHz) -> (B, proj_dim).

        Equals coqui's ``forward(x, l2_norm)``; unlike coqui the default is ``l2_norm=True``
        (what XTTS passes) and the input is not squeezed in place.
        """
        if wav.dim() == 3:
            wav = wav.squeeze(1)  # (B, 1, T) -> (B, T)
        x = self.torch_spec(wav)  # (B, T) -> (B, n_mels, F)
        if self.log_input:
            x = (x + 1e-6).log()
        x = self.instancenorm(x).unsqueeze(1)  # (B, n_mels, F) -> (B, 1, n_mels, F)
        x = self.bn1(F.relu(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 256, n_mels / 8, F / 8)
        x = x.reshape(x.shape[0], -1, x.shape[-1])  # (B, C, H, F') -> (B, C * H, F')
        w = self.attention(x)  # (B, C * H, F'), softmax over time
        mu = torch.sum(x * w, dim=2)  # (B, C * H)
        if self.encoder_type == "ASP":
            sg = torch.sqrt((torch.sum((x**2) * w, dim=2) - mu**2).clamp(min=1e-5))
            x = torch.cat((mu, sg), 1)  # (B, 2 * C * H)
        else:
            x = mu
        emb: Tensor = self.fc(x)  # (B, proj_dim)
        if l2_norm:
            emb = F.normalize(emb, p=2, dim=1)
        return emb

    def speaker_embedding(self, wav: Tensor) -> Tensor:
        """XTTS's ``get_speaker_embedding`` after resampling: 16 kHz ``wav`` (B, T) -> (B, 512, 1).

        The caller resamples the 22050 Hz reference to 16000 Hz first.
        """
        return self.forward(wav, l2_norm=True).unsqueeze(-1)  # (B, 512) -> (B, 512, 1)
