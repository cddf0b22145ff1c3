"""The XTTS-v2 vocoder: GPT latents (B, T, 1024) + speaker embedding (B, 512, 1) -> 24 kHz wave.

What it does: :class:`HifiDecoder` repeats coqui's ``HifiDecoder.forward`` (two linear
interpolations, then a speaker-conditioned HiFi-GAN generator with ResBlock1 multi-receptive-field
blocks) with the same parameter names as coqui's ``hifigan_decoder.*`` state_dict, so a slice of
a released checkpoint loads with ``strict=True`` once weight norm is folded
(:func:`xtts_core.model.weight_norm.fold_weight_norm`). The exact mapping from latents to
output samples and the windowed entry point (:meth:`HifiDecoder.vocode_window`) that incremental
vocoding is built on live beside it (:mod:`xtts_core.model.hifigan_frames`). The generator takes right-padded batches of rows of
different lengths (``lengths`` of :meth:`HifiganGenerator.forward`), exactly, so windows of many
streams can be vocoded in one call.

What it does not do: weight norm (plain convolutions, inference only), training, coqui's
``ResBlock2`` / ``lin_pre`` / ``inference_padding`` paths (XTTS never uses them), checkpoint
loading, streaming state or cross-fades.

Sample mapping at the released settings (22050 -> 24000 Hz, hop 256, code stride 1024):
T latents -> ``4T`` frames (x4 linear) -> ``M = floor(4T * 24000 / 22050)`` frames (linear)
-> ``256 * M`` samples. One latent is 1114.56 output samples (46.44 ms).

Receptive field (release sizes; see :meth:`HifiganGenerator.receptive_field` and
:meth:`HifiDecoder.source_latents`; checked by a perturbation test): an output sample of generator
frame ``m`` depends on generator frames ``m - 13 .. m + 13``. Through both interpolations an
output sample depends on at most 9 consecutive latents: a sample of frame ``m``, which lies in
latent ``t = floor((m + 0.5) / 4.354)``, depends only on latents ``t - 4 .. t + 4``
(``4.354 = 4 * 24000 / 22050`` frames per latent). So a streaming vocoder needs 4 latents of
left context, and the samples of a chunk are final once 4 more latents have followed it
(:meth:`HifiDecoder.stable_samples` gives the exact count).
"""

from __future__ import annotations

# The imports below follow the require_inference guard on purpose.
# ruff: noqa: E402
from xtts_core._extras import require_inference

require_inference("xtts_core.model")

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xtts_core.model.hifigan_frames import FrameMapping
from xtts_core.model.speaker_encoder import ResNetSpeakerEncoder

__all__ = ["HifiDecoder", "HifiganConfig", "HifiganGenerator", "ResBlock1"]

LRELU_SLOPE = 0.1  # inside the generator; the last leaky_relu uses PyTorch's default 0.01


@dataclass(frozen=True)
class HifiganConfig:
    """Sizes of the HiFi-GAN generator; the defaults are XTTS-v2's."""

    in_channels: int = 1024
    upsample_initial_channel: int = 512
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    cond_channels: int = 512
    cond_in_each_up_layer: bool = True


def _padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


class ResBlock1(nn.Module):
    """HiFi-GAN residual block type 1: per dilation ``x += conv2(lrelu(conv1_d(lrelu(x))))``."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]) -> None:
        super().__init__()
        k = kernel_size
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, k, 1, dilation=d, padding=_padding(k, d))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, k, 1, dilation=1, padding=_padding(k)) for _ in dilations
        )

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``mask`` (B, 1, T) of 0/1 zeroes each conv's output past a row's length (see
        :meth:`HifiganGenerator.forward`); ``x`` must already be zero there."""
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            h = _masked(c1(F.leaky_relu(x, LRELU_SLOPE)), mask)
            h = _masked(c2(F.leaky_relu(h, LRELU_SLOPE)), mask)
            x = h + x
        return x


class HifiganGenerator(nn.Module):
    """Speaker-conditioned HiFi-GAN generator: frames (B, C_in, M) -> wave (B, 1, M * hop).

    Parameter names equal coqui's ``HifiganGenerator`` (after weight-norm folding): ``conv_pre``,
    ``ups.i``, ``resblocks.j.convs1.k`` / ``convs2.k``, ``conv_post`` (no bias), ``cond_layer``
    and, with ``cond_in_each_up_layer``, ``conds.i``. ``resblocks`` is flat: stage ``i`` owns
    blocks ``i * len(resblock_kernel_sizes) ...``.
    """

    def __init__(
        self,
        in_channels: int,
        upsample_initial_channel: int,
        upsample_rates: Sequence[int],
        upsample_kernel_sizes: Sequence[int],
        resblock_kernel_sizes: Sequence[int],
        resblock_dilation_sizes: Sequence[Sequence[int]],
        cond_channels: int = 0,
        cond_in_each_up_layer: bool = False,
    ) -> None:
        super().__init__()
        if len(upsample_rates) != len(upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes differ in length")
        if len(resblock_kernel_sizes) != len(resblock_dilation_sizes):
            raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes differ in length")
        if cond_in_each_up_layer and cond_channels <= 0:
            raise ValueError("cond_in_each_up_layer needs cond_channels > 0")
        self.upsample_rates = tuple(upsample_rates)
        self.upsample_kernel_sizes = tuple(upsample_kernel_sizes)
        self.resblock_kernel_sizes = tuple(resblock_kernel_sizes)
        self.resblock_dilation_sizes = tuple(tuple(d) for d in resblock_dilation_sizes)
        self.num_kernels = len(resblock_kernel_sizes)
        self.hop_length = math.prod(upsample_rates)

        c0 = upsample_initial_channel
        self.conv_pre = nn.Conv1d(in_channels, c0, 7, 1, padding=3)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(c0 // 2**i, c0 // 2 ** (i + 1), k, u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes, strict=True))
        )
        self.resblocks = nn.ModuleList(
            ResBlock1(c0 // 2 ** (i + 1), k, d)
            for i in range(len(self.ups))
            for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes, strict=True)
        )
        c_last = c0 // 2 ** len(self.ups)
        self.conv_post = nn.Conv1d(c_last, 1, 7, 1, padding=3, bias=False)
        self.cond_layer = nn.Conv1d(cond_channels, c0, 1) if cond_channels > 0 else None
        self.conds = (
            nn.ModuleList(
                nn.Conv1d(cond_channels, c0 // 2 ** (i + 1), 1) for i in range(len(self.ups))
            )
            if cond_in_each_up_layer
            else None
        )

    @classmethod
    def from_config(cls, config: HifiganConfig) -> HifiganGenerator:
        """Build the generator from a :class:`HifiganConfig`."""
        return cls(
            config.in_channels,
            config.upsample_initial_channel,
            config.upsample_rates,
            config.upsample_kernel_sizes,
            config.resblock_kernel_sizes,
            config.resblock_dilation_sizes,
            config.cond_channels,
            config.cond_in_each_up_layer,
        )

    def forward(
        self, x: Tensor, g: Tensor | None = None, lengths: Sequence[int] | None = None
    ) -> Tensor:
        """Vocode frames ``x`` (B, C_in, M) with speaker embedding ``g`` (B, cond, 1).

        Returns the wave (B, 1, M * hop_length) in [-1, 1].

        ``lengths`` vocodes rows of different lengths in one call: row ``b`` holds
        ``lengths[b]`` frames, right-padded to ``M``, and its first ``lengths[b] * hop_length``
        samples equal the unpadded row's output (the rest is junk to crop). Why this is exact:
        every layer is a convolution whose zero padding is what it reads past a row's end, and
        each stage is exactly ``rate`` times longer than the one before, so zeroing every
        conv's output past ``length * (rates so far)`` keeps the padding at zero throughout.
        """
        if (self.cond_layer is not None or self.conds is not None) and g is None:
            raise ValueError("this generator is speaker-conditioned: pass g (B, cond_channels, 1)")
        valid = None
        if lengths is not None:
            self._check_lengths(x, lengths)
            valid = torch.tensor(list(lengths), device=x.device)
        mask = _length_mask(valid, x.shape[-1], x.dtype)
        o = self.conv_pre(_masked(x, mask))
        if self.cond_layer is not None:
            o = o + self.cond_layer(g)  # (B, C0, 1) broadcast over time
        o = _masked(o, mask)
        n = self.num_kernels
        for i, up in enumerate(self.ups):
            o = up(F.leaky_relu(o, LRELU_SLOPE))
            if self.conds is not None:
                o = o + self.conds[i](g)
            if valid is not None:
                valid = valid * self.upsample_rates[i]
                mask = _length_mask(valid, o.shape[-1], o.dtype)
                o = _masked(o, mask)
            z = self.resblocks[i * n](o, mask)
            for j in range(1, n):
                z = z + self.resblocks[i * n + j](o, mask)
            o = z / n
        o = F.leaky_relu(o)  # default slope 0.01, as coqui
        return torch.tanh(self.conv_post(o))

    def _check_lengths(self, x: Tensor, lengths: Sequence[int]) -> None:
        if len(lengths) != x.shape[0] or not all(1 <= n <= x.shape[-1] for n in lengths):
            raise ValueError(
                f"lengths must give 1..{x.shape[-1]} frames for each of {x.shape[0]} rows"
            )
        odd = [
            (k, u)
            for k, u in zip(self.upsample_kernel_sizes, self.upsample_rates, strict=True)
            if (k - u) % 2
        ]
        if odd:  # the stage is not exactly `rate` times longer: padding would leak in
            raise ValueError(f"padded rows need even kernel - rate at every upsampling: {odd}")

    def weight_normed_keys(self) -> list[str]:
        """Names of the weights coqui keeps under weight norm (``ups.*``, ``resblocks.*``)."""
        return [
            name
            for name, _ in self.named_parameters()
            if name.endswith(".weight") and name.startswith(("ups.", "resblocks."))
        ]

    def receptive_field(self) -> tuple[int, int]:
        """Input frames an output sample depends on, as ``(left, right)`` around its own frame.

        Output sample ``n`` lies in frame ``m = n // hop_length`` and depends only on input
        frames ``m - left .. m + right``; the worst case over the phases ``n % hop_length`` of
        :meth:`phase_receptive_field`. ``(13, 13)`` at XTTS's sizes.
        """
        lefts, rights = self.phase_receptive_field()
        return max(lefts), max(rights)

    def phase_receptive_field(self) -> tuple[list[int], list[int]]:
        """Per phase ``p = n % hop_length``: the input frames ``m - left[p] .. m + right[p]``.

        Computed by propagating index intervals backwards through every layer (kernel, stride,
        padding and dilation), ignoring sequence edges; exact when no kernel tap is zero.
        """
        growth = max(
            sum(_padding(k, d) + _padding(k) for d in dils)
            for k, dils in zip(
                self.resblock_kernel_sizes, self.resblock_dilation_sizes, strict=True
            )
        )  # one side, at every stage's own rate: MRF blocks all see the same input
        lefts: list[int] = []
        rights: list[int] = []
        for n in range(self.hop_length):
            lo, hi = n - 3, n + 3  # conv_post, k7
            for i in reversed(range(len(self.ups))):
                lo, hi = lo - growth, hi + growth  # MRF blocks of stage i
                k, s = self.upsample_kernel_sizes[i], self.upsample_rates[i]
                p = (k - s) // 2
                lo, hi = -((-(lo + p - k + 1)) // s), (hi + p) // s  # ConvTranspose1d inverse
            lefts.append(3 - lo)  # conv_pre, k7; the frame of n is 0
            rights.append(hi + 3)
        return lefts, rights


class HifiDecoder(FrameMapping, nn.Module):
    """Coqui's ``HifiDecoder``: latents (B, T, C) -> two interpolations -> generator -> wave.

    Submodules are ``waveform_decoder`` (:class:`HifiganGenerator`) and ``speaker_encoder``
    (:class:`ResNetSpeakerEncoder`), so the keys are those under ``hifigan_decoder.`` in an XTTS
    checkpoint. Constructor arguments carry the names of ``model_args`` (``code_stride_len`` is
    ``gpt_code_stride_len``, coqui's ``ar_mel_length_compression``).
    """

    waveform_decoder: HifiganGenerator

    def __init__(
        self,
        input_sample_rate: int = 22050,
        output_sample_rate: int = 24000,
        output_hop_length: int = 256,
        code_stride_len: int = 1024,
        decoder_input_dim: int = 1024,
        d_vector_dim: int = 512,
        cond_d_vector_in_each_upsampling_layer: bool = True,
        generator: HifiganConfig | None = None,
    ) -> None:
        """Create the decoder.

        Args:
            input_sample_rate: Rate the GPT codes were trained at (22050).
            output_sample_rate: Rate of the produced wave (24000).
            output_hop_length: Samples per generator frame assumed by the first interpolation.
            code_stride_len: Input-rate samples per audio code / latent (1024).
            decoder_input_dim: Latent width (1024); overrides ``generator.in_channels``.
            d_vector_dim: Speaker embedding width (512); overrides ``generator.cond_channels``.
            cond_d_vector_in_each_upsampling_layer: Add ``conds.i(g)`` after each upsampling.
            generator: Remaining generator sizes (default: XTTS-v2's).
        """
        super().__init__()
        self.input_sample_rate = input_sample_rate
        self.output_sample_rate = output_sample_rate
        self.output_hop_length = output_hop_length
        self.code_stride_len = code_stride_len
        self.latent_scale = code_stride_len / output_hop_length  # 4.0
        self.rate_scale = output_sample_rate / input_sample_rate  # 1.0884...
        base = generator if generator is not None else HifiganConfig()
        self.waveform_decoder = HifiganGenerator(
            decoder_input_dim,
            base.upsample_initial_channel,
            base.upsample_rates,
            base.upsample_kernel_sizes,
            base.resblock_kernel_sizes,
            base.resblock_dilation_sizes,
            d_vector_dim,
            cond_d_vector_in_each_upsampling_layer,
        )
        self.speaker_encoder = ResNetSpeakerEncoder()

    def forward(self, latents: Tensor, g: Tensor) -> Tensor:
        """Vocode ``latents`` (B, T, C) with speaker embedding ``g`` (B, 512, 1) -> (B, 1, N).

        ``N = hop_length * num_frames(T)``. The two ``F.interpolate`` calls are coqui's, with
        ``scale_factor`` (not a size), so PyTorch maps ``src = (dst + 0.5) / scale - 0.5``. Coqui's
        ``squeeze`` calls between them only drop size-1 dims and change no value.
        """
        z = F.interpolate(
            latents.transpose(1, 2), scale_factor=[self.latent_scale], mode="linear"
        )  # (B, C, T) -> (B, C, 4T)
        if self.output_sample_rate != self.input_sample_rate:
            z = F.interpolate(z, scale_factor=[self.rate_scale], mode="linear")  # (B, C, M)
        wav: Tensor = self.waveform_decoder(z, g)
        return wav


def _length_mask(lengths: Tensor | None, size: int, dtype: torch.dtype) -> Tensor | None:
    """(B, 1, size) ones on each row's first ``lengths[b]`` steps, zeros after; None for None."""
    if lengths is None:
        return None
    steps = torch.arange(size, device=lengths.device)
    return (steps[None, :] < lengths[:, None]).to(dtype)[:, None, :]


def _masked(x: Tensor, mask: Tensor | None) -> Tensor:
    return x if mask is None else x * mask
