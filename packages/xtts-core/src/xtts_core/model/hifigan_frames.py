"""Which latents make which samples of the XTTS vocoder, exactly: for windowed vocoding.

What it does: :class:`FrameMapping` gives :class:`~xtts_core.model.hifigan.HifiDecoder` the
arithmetic of its two linear interpolations (latents -> generator frames -> samples), computed
with PyTorch's own taps and rounding: how many frames and samples T latents make, which latents a
frame range reads, which leading samples are final once T latents are known, the interpolated
frames of a latent window (bit for bit equal to ``forward``'s on CPU), and the vocoding of such
a window. Incremental vocoding (``stream.py``) is built on these.

What it does not do: hold weights (the decoder does), or any streaming state.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from xtts_core._extras import require_inference

require_inference("xtts_core.model")

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

__all__ = ["FrameMapping"]


class _Generator(Protocol):
    """What the mapping reads of the HiFi-GAN generator."""

    @property
    def hop_length(self) -> int: ...

    def phase_receptive_field(self) -> tuple[list[int], list[int]]: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


class FrameMapping:
    """The sample mapping of a HiFi-GAN decoder with ``latent_scale``, ``rate_scale``, the two
    sample rates, ``hop_length`` and a ``waveform_decoder`` generator (see the module doc)."""

    latent_scale: float
    rate_scale: float
    input_sample_rate: int
    output_sample_rate: int
    waveform_decoder: _Generator

    @property
    def hop_length(self) -> int:
        """Output samples per generator frame (the product of the upsample rates, 256)."""
        return self.waveform_decoder.hop_length

    def num_frames(self, num_latents: int) -> int:
        """Generator frames ``M`` that ``forward`` makes from ``num_latents`` latents.

        Same arithmetic as PyTorch's ``interpolate`` (``floor(size * scale)`` in double).
        """
        frames = math.floor(num_latents * self.latent_scale)
        if self.output_sample_rate != self.input_sample_rate:
            frames = math.floor(frames * self.rate_scale)
        return frames

    def num_samples(self, num_latents: int) -> int:
        """Output samples ``forward`` makes from ``num_latents`` latents (256 * M at release)."""
        return self.hop_length * self.num_frames(num_latents)

    def _stages(self) -> list[float]:
        if self.output_sample_rate != self.input_sample_rate:
            return [self.latent_scale, self.rate_scale]
        return [self.latent_scale]

    def source_latents(self, frame_start: int, frame_end: int) -> tuple[int, int]:
        """Latent index range ``[lo, hi)`` that generator frames ``[frame_start, frame_end)`` read.

        Computed with the interpolation taps as if the sequence never ended (at the true end the
        right tap is clamped to the last latent, which only shrinks the range).
        """
        idx = torch.arange(frame_start, frame_end)
        lo_idx, hi_idx = idx, idx
        for scale in reversed(self._stages()):
            lo_idx = _linear_taps(lo_idx, scale, 2**62)[0]
            hi_idx = _linear_taps(hi_idx, scale, 2**62)[1]
        return int(lo_idx.min()), int(hi_idx.max()) + 1

    def stable_samples(self, num_latents: int) -> int:
        """Leading output samples that are final once ``num_latents`` latents are known.

        Sample ``n`` of frame ``m`` reads generator frames up to ``m + right[n % hop_length]``
        (:meth:`HifiganGenerator.phase_receptive_field`) and through them latents up to the
        last one of :meth:`source_latents`; it cannot change when latents are appended once
        that is below ``num_latents`` (the last latent is then read unclamped). At the end of a
        sentence every sample is final (``num_samples(num_latents)``). At release settings this
        lags ``num_samples(num_latents)`` by 3770 or 4026 samples (3.4 to 3.6 latents; T >= 4).
        """
        frames = self.num_frames(num_latents)
        lengths = [num_latents, math.floor(num_latents * self.latent_scale)]
        if frames == 0 or any(
            math.floor(n * scale) == n for n, scale in zip(lengths, self._stages(), strict=False)
        ):
            # PyTorch copies instead of interpolating here (T <= 2); more latents change it
            return 0
        hop = self.hop_length
        _, rights = self.waveform_decoder.phase_receptive_field()
        n = torch.arange(frames * hop)
        idx = n // hop + torch.tensor(rights)[n % hop]  # last generator frame sample n reads
        for scale in reversed(self._stages()):
            idx = _linear_taps(idx, scale, 2**62)[1]
        ok = idx < num_latents
        return int(ok.cumprod(0).sum())  # the final samples form a prefix

    def upsample_latents(
        self,
        latents: Tensor,
        latent_start: int = 0,
        frame_start: int = 0,
        frame_end: int | None = None,
    ) -> Tensor:
        """Generator frames ``[frame_start, frame_end)`` (global numbering) from a latent window.

        ``latents`` (B, T_w, C) are latents ``latent_start .. latent_start + T_w`` of a sequence
        that is treated as ending at ``latent_start + T_w`` (the right interpolation tap is
        clamped there, as ``forward`` clamps at the true end). The result equals
        ``forward``'s interpolated frames ``[frame_start, frame_end)`` of that sequence (same
        taps, weights and rounding as PyTorch's CPU kernel: bit for bit on CPU, within an ulp
        elsewhere), so the grid stays aligned however the window is placed. ``frame_end``
        defaults to ``num_frames(latent_start + T_w)``.

        Returns:
            (B, C, frame_end - frame_start) frames.

        Raises:
            ValueError: if a requested frame reads a latent before ``latent_start`` or the frame
                range is empty or beyond the end.
        """
        total = latent_start + latents.shape[1]
        if frame_end is None:
            frame_end = self.num_frames(total)
        if not 0 <= frame_start < frame_end <= self.num_frames(total):
            raise ValueError(
                f"frames [{frame_start}, {frame_end}) outside [0, {self.num_frames(total)}) "
                f"for latents [{latent_start}, {total})"
            )
        # Taps from the output grid back to latents; lengths are those of the whole sequence.
        stages = self._stages()
        lengths = [total]
        for scale in stages[:-1]:
            lengths.append(math.floor(lengths[-1] * scale))
        idx = torch.arange(frame_start, frame_end, device=latents.device)
        taps: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
        for scale, length in reversed(list(zip(stages, lengths, strict=True))):
            if math.floor(length * scale) == length:  # PyTorch copies when sizes are equal (T <= 2)
                one = torch.ones(idx.shape, dtype=torch.float32, device=idx.device)
                i0, i1, w0, w1 = idx, idx, one, one - 1.0
            else:
                i0, i1, w0, w1 = _linear_taps(idx, scale, length, latents.dtype)
            taps.append((i0, i1, w0, w1))
            idx = torch.cat([i0, i1])  # frames of the previous stage that are read
        first = int(idx.min())
        if first < latent_start:
            raise ValueError(
                f"frames [{frame_start}, {frame_end}) read latent {first}, "
                f"before latent_start {latent_start}"
            )
        x = latents.transpose(1, 2)  # (B, T_w, C) -> (B, C, T_w)
        i0, i1, w0, w1 = taps[-1]  # first stage: gather latents by global index
        x = _mix(x[..., i0 - latent_start], x[..., i1 - latent_start], w0, w1)  # (B, C, len(i0))
        for i0, _, w0, w1 in reversed(taps[:-1]):
            k = i0.numel()  # x holds this stage's i0 taps, then its i1 taps
            x = _mix(x[..., :k], x[..., k:], w0, w1)  # (B, C, 2k) -> (B, C, k)
        return x

    def vocode_window(
        self,
        latents: Tensor,
        g: Tensor,
        latent_start: int = 0,
        frame_start: int = 0,
        frame_end: int | None = None,
    ) -> Tensor:
        """Vocode generator frames ``[frame_start, frame_end)`` from a latent window.

        Returns the wave (B, 1, hop_length * (frame_end - frame_start)); its sample ``k`` is
        global output sample ``hop_length * frame_start + k``. It equals ``forward``'s output
        for those samples wherever the generator's receptive field (:meth:`HifiganGenerator.
        receptive_field`, 13 frames each side at release) stays inside the window or reaches a
        true sequence edge, and wherever the interpolation taps (:meth:`source_latents`) are
        not clamped by the end of the window.
        """
        z = self.upsample_latents(latents, latent_start, frame_start, frame_end)
        wav: Tensor = self.waveform_decoder(z, g)
        return wav


def _mix(a: Tensor, b: Tensor, w0: Tensor, w1: Tensor) -> Tensor:
    """``a * w0 + b * w1`` rounded to ``a``'s dtype, as PyTorch's CPU kernel computes it.

    For float32 and narrower the kernel evaluates ``fma(a, w0, b * w1)`` in float32 (one rounding
    for ``b * w1``, one at the end), emulated in float64, which reproduces it bit for bit in
    practice. float64 inputs are mixed in float64.
    """
    if a.dtype == torch.float64:
        return a * w0 + b * w1
    return (a.double() * w0.double() + (b.float() * w1).double()).to(a.dtype)


def _linear_taps(
    dst: Tensor, scale: float, in_len: int, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """PyTorch's linear ``interpolate(scale_factor=scale, align_corners=False)`` taps.

    For output indices ``dst`` of an input of length ``in_len`` returns ``(i0, i1, w0, w1)`` with
    ``out[dst] = w0 * in[i0] + w1 * in[i1]``, as PyTorch's kernel computes them in its "opmath"
    type (float32, or float64 for float64 inputs; ``dtype``):
    ``src = max(opmath(1 / scale) * (dst + 0.5) - 0.5, 0)`` rounded once (the CPU kernel is
    compiled to a fused multiply-add; emulated in float64, exact for float32),
    ``i0 = floor(src)``, ``i1 = i0 + 1`` clamped to ``in_len - 1``, ``w1 = src - i0``,
    ``w0 = 1 - w1``.
    """
    opmath = torch.float64 if dtype == torch.float64 else torch.float32
    step = float(torch.tensor(1.0 / scale, dtype=opmath))  # the kernel's step
    src = (step * (dst.to(torch.float64) + 0.5) - 0.5).to(opmath).clamp(min=0.0)
    i0 = src.floor().to(torch.int64).clamp(max=in_len - 1)
    w1 = (src - i0.to(opmath)).clamp(0.0, 1.0)
    i1 = torch.where(i0 < in_len - 1, i0 + 1, i0)
    return i0, i1, 1.0 - w1, w1
